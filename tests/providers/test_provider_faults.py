"""Providers that misbehave: connection resets, 429s, 5xx, HTML, invalid JSON and 50 MB bodies.

Each fault is checked where it matters: validation and discovery (provider service and REST), and calls
through ``get_llm`` (with and without a fallback chain). Every case must end in a clear exception or
status within a bounded time: no hang, no unbounded memory, no crash. Real loopback servers on SQLite
and PostgreSQL, no mocks. (HTML, invalid JSON, 500 and a hanging provider at validation time are in
test_provider_service.py.)
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import openai
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate, FallbackTarget
from llmconfig.db.models import Provider
from llmconfig.errors import ProviderBadResponseError, ProviderError, ProviderUnreachableError
from llmconfig.providers import ProviderCreate
from llmconfig.tokens import TokenService
from tests.api.conftest import API, problem_of
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.peers.base import HUGE_BODY_BYTES

MB = 1024 * 1024


def custom(name: str, base_url: str) -> ProviderCreate:
    return ProviderCreate(name=name, provider_type="custom", api_base_url=base_url, api_key=SecretStr(OPENAI_PEER_KEY))


def provider_count(service: LLMConfigService) -> int:
    with service.sessions() as session:
        return session.scalar(select(func.count()).select_from(Provider)) or 0


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("behaviour", "error", "status", "words"),
    [
        ("reset", ProviderUnreachableError, "unreachable", "closed the connection without a complete answer"),
        ("ratelimit429", ProviderBadResponseError, "bad_response", "HTTP 429"),
        ("huge", ProviderBadResponseError, "bad_response", "larger than 8 MB"),
    ],
)
def test_faults_at_validation_are_reported_and_nothing_is_written(
    service: LLMConfigService,
    openai_peer: OpenAIPeer,
    behaviour: str,
    error: type[ProviderError],
    status: str,
    words: str,
) -> None:
    openai_peer.behaviour = behaviour
    with pytest.raises(error, match=words) as caught:
        service.providers.add(custom("local", openai_peer.base_url))
    assert caught.value.status == status
    assert "\n" not in str(caught.value) and OPENAI_PEER_KEY not in str(caught.value)
    assert provider_count(service) == 0

    provider, _ = service.providers.add(custom("local", openai_peer.base_url), validate=False)
    result = service.providers.validate(provider.id)
    assert not result.ok and result.status == status and words in result.detail
    assert service.providers.get(provider.id).validation_status == "failed"

    openai_peer.behaviour = "ok"  # the shared client is still usable afterwards
    assert service.providers.validate(provider.id).ok


def test_a_huge_body_is_abandoned_quickly_with_bounded_memory(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    openai_peer.behaviour = "huge"
    tracemalloc.start()
    try:
        started = time.monotonic()
        result = service.providers.check(
            service.providers.add(custom("local", openai_peer.base_url), validate=False)[0].id
        )[1]
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "bad_response" and "larger than 8 MB" in result.detail
    assert elapsed < 5
    # The peer would send 50 MB; no more than the 8 MB limit (and some bookkeeping) was ever held.
    assert peak < 24 * MB, f"peak {peak / MB:.1f} MB"
    assert HUGE_BODY_BYTES == 50 * MB


# ------------------------------------------------------------------------------------------------ REST


@pytest.fixture
def rest(service: LLMConfigService) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app over ``service`` and an admin's headers."""
    token, _ = TokenService(sessions=service.sessions).create(role="admin", name="test-admin")
    with TestClient(create_app(service.settings, service=service), raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {token}"}


@pytest.mark.request_timeout(5)
def test_rest_validate_reports_blocked(rest: tuple[TestClient, dict[str, str]]) -> None:
    client, admin = rest
    body = {"name": "meta", "provider_type": "custom", "api_base_url": "http://169.254.169.254/v1"}

    refused = client.post(f"{API}/providers", params={"validate": "true"}, json=body, headers=admin)
    assert refused.status_code == 422
    assert "LLMCONFIG_OUTBOUND_ALLOW" in problem_of(refused)["detail"]
    assert refused.json()["validation"]["status"] == "blocked"

    created = client.post(f"{API}/providers", params={"validate": "false"}, json=body, headers=admin)
    assert created.status_code == 201, created.text
    provider_id = created.json()["id"]
    started = time.monotonic()
    response = client.post(f"{API}/providers/{provider_id}/validate", headers=admin)
    # Refused before any connection: an attempt would run into the 5 s request timeout (1 s of margin).
    assert time.monotonic() - started < 4.0
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is False and result["status"] == "blocked"
    assert result["detail"].startswith("Request to 169.254.169.254 blocked: 169.254.169.254 is in the link-local range")
    stored = client.get(f"{API}/providers/{provider_id}", headers=admin).json()
    assert stored["validation_status"] == "failed" and stored["validation_error"] == result["detail"]


# ------------------------------------------------------------------------------------------------ calls


def configure(service: LLMConfigService, primary: str, *fallbacks: str) -> None:
    service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id=primary,
            model_name="gpt-4o",
            fallbacks=[FallbackTarget(provider_id=f, model_name="gpt-4o") for f in fallbacks] or None,
        ),
        actor="t",
    )


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("reset", openai.APIConnectionError),
        ("error500", openai.InternalServerError),
        ("ratelimit429", openai.RateLimitError),
        # Refused by the answer checks before the SDK sees them (which would hand the page back as text, or
        # read all 50 MB before failing to parse them).
        ("html", ProviderBadResponseError),
        ("garbage", ProviderBadResponseError),
        ("huge", ProviderBadResponseError),
    ],
)
def test_call_faults_raise_promptly_and_the_next_call_works(
    service: LLMConfigService, openai_peer: OpenAIPeer, behaviour: str, error: type[Exception]
) -> None:
    provider, _ = service.providers.add(custom("local", openai_peer.base_url), validate=False)
    configure(service, provider.id)
    llm = service.get_llm("reasoning")
    openai_peer.behaviour = behaviour
    started = time.monotonic()
    with pytest.raises(error):
        llm.invoke("hi")
    # Includes the SDK's own two retries (with backoff) for resets, 429 and 5xx.
    assert time.monotonic() - started < 10
    openai_peer.behaviour = "ok"
    assert llm.invoke("hi").content == "Hello from openai-peer"


def test_a_reset_moves_on_to_the_next_provider_of_the_chain(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, name="first") as first:
        first.behaviour = "reset"
        primary, _ = service.providers.add(custom("first", first.base_url), validate=False)
        second, _ = service.providers.add(custom("second", openai_peer.base_url), validate=False)
        configure(service, primary.id, second.id)
        started = time.monotonic()
        assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
        assert time.monotonic() - started < 5
        # One attempt on the first provider: no retries inside a chain.
        assert len(first.requests_to("/v1/chat/completions")) == 1
        assert first.last_request.status is None  # dropped, never answered
