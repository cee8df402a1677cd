"""Guards in front of every route: NUL characters and oversized bodies are refused before any route runs."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.api.conftest import API, ApiContext


def provider_count(api: ApiContext) -> int:
    return len(api.service.providers.list())


def assert_problem(response: object, status: int, words: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    assert words in response.json()["detail"]  # type: ignore[attr-defined]


def test_nul_in_a_body_is_refused_and_nothing_is_stored(client: TestClient, api: ApiContext) -> None:
    for name in ("nul\x00name", "escaped"):
        body = {"name": name, "provider_type": "custom", "api_base_url": "http://127.0.0.1:9/v1"}
        raw = json.dumps(body)
        if name == "escaped":
            raw = raw.replace("escaped", "esc\\u0000aped")  # the JSON escape is refused too
        response = client.post(
            f"{API}/providers",
            content=raw.encode(),
            headers={**api.admin, "Content-Type": "application/json"},
            params={"validate": "false"},
        )
        assert_problem(response, 422, "the body contains a NUL character")
    assert provider_count(api) == 0


def test_nul_in_a_path_or_query_is_refused(client: TestClient, api: ApiContext) -> None:
    assert_problem(client.get(f"{API}/users/a%00b/config", headers=api.viewer), 422, "contains a NUL character")
    assert_problem(client.get(f"{API}/audit?before=1%00", headers=api.viewer), 422, "contains a NUL character")


def test_an_oversized_body_is_refused_with_413_and_nothing_is_stored(client: TestClient, api: ApiContext) -> None:
    body = {
        "name": "big",
        "provider_type": "custom",
        "api_base_url": "http://127.0.0.1:9/v1",
        "padding": "x" * 1_100_000,
    }
    response = client.post(f"{API}/providers", json=body, headers=api.admin, params={"validate": "false"})
    assert_problem(response, 413, "too large")
    assert provider_count(api) == 0
