"""History and rollback over HTTP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.providers import ProviderCreate
from tests.api.conftest import API, ApiContext
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer


@pytest.fixture
def local(service: LLMConfigService, openai_peer: OpenAIPeer) -> str:
    provider, _ = service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    return provider.id


def test_history_and_rollback_over_http(api: ApiContext, client: TestClient, local: str) -> None:
    for model in ("gpt-4o", "gpt-4o-mini"):
        response = client.put(
            f"{API}/config/reasoning", json={"provider_id": local, "model_name": model}, headers=api.admin
        )
        assert response.status_code == 200, response.text
    history = client.get(f"{API}/config/reasoning/history", headers=api.viewer).json()
    assert [v["version"] for v in history] == [2, 1]
    assert client.post(f"{API}/config/reasoning/rollback", json={"version": 1}, headers=api.viewer).status_code == 403

    response = client.post(f"{API}/config/reasoning/rollback", json={"version": 1}, headers=api.admin)
    assert response.status_code == 200 and response.json()["model_name"] == "gpt-4o"
    assert response.json()["version"] == 3
    missing = client.post(f"{API}/config/reasoning/rollback", json={"version": 99}, headers=api.admin)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
