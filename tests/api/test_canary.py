"""Canary: a unique API key goes in through the REST API and must never come out anywhere.

The key is added once, then the API is exercised broadly (reads, edits, validation, discovery,
configuration, overrides, audit, metrics, the OpenAPI document, the Python API and many error paths).
Afterwards the key must be absent from every response body and header, every log record (root logger
at DEBUG, and SQLAlchemy's statement and parameter logging too), and every byte the database holds:
the SQLite file with its WAL and shared-memory files, or every row of every PostgreSQL table.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url

from tests.api.conftest import API, ApiContext
from tests.helpers import free_tcp_port
from tests.peers import OpenAIPeer

CANARY = f"sk-canary-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def canary_peer() -> Iterator[OpenAIPeer]:
    """An OpenAI peer that accepts only the canary key."""
    with OpenAIPeer(api_key=CANARY, models=("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")) as peer:
        yield peer


class Recorder:
    """Sends requests with the test client and keeps every response for the final inspection."""

    def __init__(self, client: TestClient, api: ApiContext) -> None:
        self.client, self.api = client, api
        self.responses: list[Any] = []

    def __call__(self, method: str, path: str, expect: int, *, admin: bool = True, **kwargs: Any) -> Any:
        headers = {**(self.api.admin if admin else self.api.viewer), **kwargs.pop("headers", {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.responses.append(response)
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        return response


def database_bytes(api: ApiContext) -> bytes:
    """Everything the database holds, as bytes: the SQLite files, or every row of every PostgreSQL table."""
    url = make_url(api.service.settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(str(url.database))
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert database.exists()
        return b"".join(path.read_bytes() for path in files if path.exists())
    metadata = MetaData()
    metadata.reflect(api.service.engine)
    dump: list[str] = []
    with api.service.engine.connect() as connection:
        for table in metadata.sorted_tables:
            dump.append(f"-- {table.name}")
            dump.extend(repr(tuple(row)) for row in connection.execute(select(table)))
    assert {"providers", "audit_entries", "global_configs", "user_configs"} <= set(metadata.tables)
    return "\n".join(dump).encode()


def test_the_api_key_leaks_nowhere(
    client: TestClient, api: ApiContext, canary_peer: OpenAIPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy pins its own logger at WARNING; open it up so statements and their parameters are seen.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    call = Recorder(client, api)
    providers = f"{API}/providers"

    # -- the key goes in once, validated against a peer that only accepts it
    created = call(
        "POST",
        providers,
        201,
        params={"validate": "true"},
        json={
            "name": "canary-provider",
            "provider_type": "openai",
            "api_base_url": canary_peer.base_url,
            "api_key": CANARY,
        },
    ).json()
    pid = created["id"]
    assert created["validation_status"] == "ok"

    # -- reads, edits that keep the key, validation and discovery
    call("GET", providers, 200, admin=False)
    call("GET", f"{providers}/{pid}", 200, admin=False)
    call("GET", f"{providers}/canary-provider", 200, admin=False)
    call("PATCH", f"{providers}/{pid}", 200, json={"enabled": False})
    call("PATCH", f"{providers}/{pid}", 200, json={"enabled": True, "version": 2})
    call("PATCH", f"{providers}/{pid}", 200, json={"api_base_url": canary_peer.root_url})  # normalised to /v1
    call("PATCH", f"{providers}/{pid}", 200, json={"api_key": f"  {CANARY}  "})  # same key again, padded
    assert call("POST", f"{providers}/{pid}/validate", 200).json()["status"] == "ok"
    call("GET", f"{providers}/{pid}/models", 200, admin=False)
    call("GET", f"{providers}/{pid}/models", 200, params={"refresh": "true"})
    call("GET", f"{providers}/{pid}/models", 403, admin=False, params={"refresh": "true"})

    # -- configuration, overrides, the Python API
    reasoning = {"provider_id": pid, "model_name": "gpt-4o", "temperature": 0.4, "max_tokens": 64}
    call("PUT", f"{API}/config/reasoning", 200, json=reasoning)
    call("PUT", f"{API}/config/reasoning", 200, json={**reasoning, "temperature": 0.6, "version": 1})
    call("PUT", f"{API}/config/embeddings", 200, json={"provider_id": pid, "model_name": "text-embedding-3-small"})
    call("GET", f"{API}/config", 200, admin=False)
    call("GET", f"{API}/config/reasoning", 200, admin=False)
    call("GET", f"{API}/config/summary", 200, admin=False)
    assert call("GET", f"{API}/config/validate", 200, admin=False).json()["ok"] is True
    call("PUT", f"{API}/users/u-canary/config/tools", 200, json={"provider_id": pid, "model_name": "gpt-4o-mini"})
    call("GET", f"{API}/users/u-canary/config", 200, admin=False)
    answer = api.service.get_llm("reasoning", user_id="u-canary").invoke("Say hello")
    assert "Hello" in str(answer.content)
    assert len(api.service.get_embeddings().embed_query("canary")) == canary_peer.embedding_dimensions
    call("DELETE", f"{API}/users/u-canary/config/tools", 204)
    call("POST", f"{API}/interaction-types", 201, json={"name": "canary-type", "kind": "chat"})
    call("GET", f"{API}/interaction-types", 200, admin=False)

    # -- error paths, most of them carrying the key
    closed = f"http://127.0.0.1:{free_tcp_port()}/v1"
    with_key = {"provider_type": "openai", "api_key": CANARY}
    call("POST", providers, 409, json={"name": "canary-provider", **with_key, "api_base_url": canary_peer.base_url})
    call("POST", providers, 422, json={"name": "bad-url", **with_key, "api_base_url": "ftp://127.0.0.1/v1"})
    call("POST", providers, 422, json={"name": "query", **with_key, "api_base_url": f"{canary_peer.base_url}?x=1"})
    call("POST", providers, 422, json={"name": "huge", **with_key, "api_key": CANARY * 100})
    call("POST", providers, 422, json={"name": "typo", "provider_type": "openai", "apiKey": CANARY})
    call("POST", providers, 422, json={"name": "typed", "provider_type": "openai", "api_key": [CANARY]})
    call("POST", providers, 422, json={"name": "bad-type", **with_key, "provider_type": "mistral"})
    call("POST", providers, 422, params={"validate": "true"}, json={"name": "down", **with_key, "api_base_url": closed})
    canary_peer.behaviour = "html"
    call(
        "POST",
        providers,
        422,
        params={"validate": "true"},
        json={"name": "html", **with_key, "api_base_url": canary_peer.base_url},
    )
    call("GET", f"{providers}/{pid}/models", 422, params={"refresh": "true"})
    canary_peer.behaviour = "ok"
    canary_peer.api_key = "sk-some-other-key-entirely"
    assert call("POST", f"{providers}/{pid}/validate", 200).json()["status"] == "unauthorized"
    canary_peer.api_key = CANARY
    call("PATCH", f"{providers}/{pid}", 409, json={"api_key": CANARY, "version": 1})
    call("PATCH", f"{providers}/{pid}", 422, json={"api_key": CANARY, "surprise": True})
    call("PATCH", f"{providers}/{pid}", 422, json={"api_key": CANARY, "api_base_url": "nope"})
    call("PATCH", f"{providers}/{pid}", 403, admin=False, json={"api_key": CANARY})
    call(
        "PUT",
        f"{API}/config/tools",
        422,
        json={"provider_id": pid, "model_name": "gpt-4o", "extra_params": {"api_key": CANARY}},
    )
    call("PUT", f"{API}/config/reasoning", 409, json={**reasoning, "version": 1})
    call("DELETE", f"{providers}/{pid}", 409)
    call("GET", f"{providers}/missing", 404, admin=False)
    call("GET", f"{API}/config", 401, headers={"Authorization": f"Bearer {CANARY}"})

    # -- a second provider with the key, rotated and removed
    spare = call(
        "POST",
        providers,
        201,
        json={"name": "spare", "provider_type": "custom", "api_base_url": canary_peer.base_url, "api_key": CANARY},
    ).json()
    call("PATCH", f"{providers}/{spare['id']}", 200, json={"api_key": None})
    call("PATCH", f"{providers}/{spare['id']}", 200, json={"api_key": CANARY})
    call("DELETE", f"{providers}/{spare['id']}", 204)

    # -- the key as the second key of a provider whose first key the peer rejects: the call moves to it
    keyed = call(
        "POST",
        providers,
        201,
        json={
            "name": "keyed",
            "provider_type": "custom",
            "api_base_url": canary_peer.base_url,
            "api_key": "sk-rejected-first-key-0123",
        },
    ).json()
    keys = f"{providers}/{keyed['id']}/keys"
    added = call("POST", keys, 201, json={"api_key": CANARY}).json()
    call("POST", keys, 422, json={"api_key": f"{CANARY} {CANARY}"})
    call("POST", keys, 422, json={"api_key": CANARY, "hint": CANARY})
    call("POST", keys, 403, admin=False, json={"api_key": CANARY})
    call("PUT", f"{API}/config/planning", 200, json={"provider_id": keyed["id"], "model_name": "gpt-4o"})
    assert "Hello" in str(api.service.get_llm("planning").invoke("hi").content)
    listed = call("GET", keys, 200).json()
    assert [key["resting_until"] is not None for key in listed] == [True, False]
    call("GET", keys, 403, admin=False)
    call("DELETE", f"{keys}/{added['key_id']}", 204)
    call("DELETE", f"{keys}/{added['key_id']}", 404)

    # -- operations and documentation
    call("GET", f"{API}/audit", 200, admin=False, params={"limit": 500})
    call("GET", "/metrics", 200, admin=False)
    call("GET", "/openapi.json", 200, admin=False)
    call("GET", "/health", 200, admin=False)

    # The key really was used: the peer received it on discovery, chat and embeddings requests.
    assert {r.path for r in canary_peer.requests if r.headers.get("authorization") == f"Bearer {CANARY}"} >= {
        "/v1/models",
        "/v1/chat/completions",
        "/v1/embeddings",
    }

    # -- every response, body and headers
    assert len(call.responses) > 50
    for response in call.responses:
        assert CANARY not in response.text, (response.request.method, response.request.url)
        for name, value in response.headers.items():
            assert CANARY not in value and CANARY not in name, (response.request.url, name)

    # -- every log record, formatted and raw, including exception text
    assert any(r.name.startswith("llmconfig") for r in caplog.records), "llmconfig logged nothing at all"
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "SQL logging was not captured"
    assert CANARY not in caplog.text
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.name
        assert CANARY not in repr(record.args), record.name
        assert CANARY not in (record.exc_text or ""), record.name

    # -- every byte the database holds
    stored = database_bytes(api)
    assert b"canary-provider" in stored  # the dump is real
    assert CANARY.encode() not in stored
    assert CANARY[-24:].encode() not in stored  # not even a large part of it
