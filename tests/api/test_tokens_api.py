"""/tokens over HTTP (create, list, revoke; admin only), the client role and its type limit, cheap token checks.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.api.deps import ClientForTypeDep
from llmconfig.db.models import ApiToken, AuditEntry
from llmconfig.errors import ValidationError
from llmconfig.settings import Settings
from llmconfig.tokens import Caller, TokenService
from tests.api.conftest import API, ApiContext, problem_of

TOKENS = f"{API}/tokens"
INFO_KEYS = {
    "id",
    "name",
    "role",
    "interaction_types",
    "token_prefix",
    "created_at",
    "created_by",
    "last_used_at",
    "revoked_at",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(client: TestClient, api: ApiContext, **body: Any) -> dict[str, Any]:
    response = client.post(TOKENS, json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def token_rows(api: ApiContext) -> list[tuple[Any, ...]]:
    with api.service.engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(select(ApiToken.id, ApiToken.revoked_at)))


# ------------------------------------------------------------------------------------------------ create, list, revoke


def test_create_list_and_revoke_over_rest(client: TestClient, api: ApiContext) -> None:
    created = create(client, api, name="agents", role="client", interaction_types=["reasoning", "tools"])

    token, info = created["token"], created["info"]
    assert token.startswith("llmc_") and len(token) > 40
    assert set(info) == INFO_KEYS
    assert info["role"] == "client" and info["interaction_types"] == ["reasoning", "tools"]
    assert info["token_prefix"] == token[:12] and info["created_by"] == "token:test-admin"
    assert info["revoked_at"] is None

    listed = client.get(TOKENS, headers=api.admin)
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["test-admin", "test-viewer", "agents"]
    assert listed.json()[-1] == info
    assert token not in listed.text

    # The new token works (a client may not read the configuration: 403, not 401) until it is revoked.
    assert client.get(f"{API}/config", headers=bearer(token)).status_code == 403
    assert client.delete(f"{TOKENS}/{info['id']}", headers=api.admin).status_code == 204
    refused = client.get(f"{API}/config", headers=bearer(token))
    assert refused.status_code == 401 and "Unknown or revoked token" in problem_of(refused)["detail"]
    assert next(t for t in client.get(TOKENS, headers=api.admin).json() if t["id"] == info["id"])["revoked_at"]

    # Revoking twice is harmless and audited once; an unknown id (or a name) is 404.
    assert client.delete(f"{TOKENS}/{info['id']}", headers=api.admin).status_code == 204
    actions = [e.action for e in api.service.audit.entries(limit=500) if e.target_id == info["id"]]
    assert actions == ["token.revoke", "token.create"]
    assert client.delete(f"{TOKENS}/no-such-id", headers=api.admin).status_code == 404
    assert client.delete(f"{TOKENS}/test-viewer", headers=api.admin).status_code == 404


def test_no_token_appears_in_the_listing_or_the_audit_trail(client: TestClient, api: ApiContext) -> None:
    made = [create(client, api, name=f"t-{role}", role=role)["token"] for role in ("admin", "viewer", "client")]
    for created in made[:2]:
        info_id = next(
            t["id"] for t in client.get(TOKENS, headers=api.admin).json() if t["token_prefix"] == created[:12]
        )
        client.delete(f"{TOKENS}/{info_id}", headers=api.admin)

    texts = [
        client.get(TOKENS, headers=api.admin).text,
        client.get(f"{API}/audit", params={"limit": 500}, headers=api.admin).text,
    ]
    with api.service.engine.connect() as connection:
        texts.append(json.dumps([list(map(str, row)) for row in connection.execute(select(AuditEntry))]))
        texts.append(json.dumps([list(map(str, row)) for row in connection.execute(select(ApiToken))]))
    for text in texts:
        for token in [*made, api.admin_token, api.viewer_token]:
            assert token not in text
            assert token[12:40] not in text  # not even the part after the shown prefix


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"name": "x", "role": "root"}, "'admin', 'viewer' or 'client'"),
        ({"name": "x", "role": "client", "interaction_types": ["reasoning", "nope"]}, "'nope'; known: embeddings"),
        ({"name": "x", "role": "viewer", "interaction_types": ["reasoning"]}, "Only client tokens"),
        ({"name": "x", "role": "client", "interaction_types": []}, "at least one interaction type"),
        ({"name": "  ", "role": "client"}, "1 to 100 printable characters"),
        ({"name": "x", "role": "client", "token": "llmc_chosen"}, "Extra inputs are not permitted"),
    ],
    ids=["unknown-role", "unknown-type", "types-on-viewer", "no-types", "blank-name", "chosen-token"],
)
def test_invalid_token_requests_are_422_and_store_nothing(
    client: TestClient, api: ApiContext, body: dict[str, Any], phrase: str
) -> None:
    before = token_rows(api), len(api.service.audit.entries(limit=500))

    response = client.post(TOKENS, json=body, headers=api.admin)

    assert response.status_code == 422, response.text
    assert phrase in problem_of(response)["detail"]
    assert (token_rows(api), len(api.service.audit.entries(limit=500))) == before


def test_the_service_validates_role_and_types_for_every_caller(api: ApiContext) -> None:
    tokens = TokenService(sessions=api.service.sessions)
    with pytest.raises(ValidationError, match="Unknown role 'root'; use one of admin, viewer, client"):
        tokens.create(role="root", name="x")  # type: ignore[arg-type]  # what the CLI passes through
    with pytest.raises(ValidationError, match="known: embeddings, planning, reasoning, subagents, tools"):
        tokens.create(role="client", name="x", interaction_types=["reasoning", "typo"])

    token, info = tokens.create(role="client", name="x", interaction_types=["tools", "reasoning", "tools"])
    assert info.interaction_types == ["tools", "reasoning"]
    caller = tokens.authenticate(token)
    assert caller == Caller(name="token:x", role="client", interaction_types=("tools", "reasoning"), token_id=info.id)


# ------------------------------------------------------------------------------------------------ the type limit


def test_a_limited_client_token_may_use_only_its_types(client: TestClient, api: ApiContext) -> None:
    """The dependency the resolve endpoint will declare, on a probe route of the real app."""
    app: FastAPI = api.app

    @app.get(f"{API}/probe/{{interaction_type}}")
    def probe(interaction_type: str, caller: ClientForTypeDep) -> dict[str, str]:
        return {"caller": caller.name, "interaction_type": interaction_type}

    limited = create(client, api, name="limited", role="client", interaction_types=["reasoning"])["token"]
    unlimited = create(client, api, name="all-types", role="client")["token"]

    assert client.get(f"{API}/probe/reasoning", headers=bearer(limited)).status_code == 200
    refused = client.get(f"{API}/probe/planning", headers=bearer(limited))
    assert refused.status_code == 403
    assert problem_of(refused)["detail"] == "This token may use only the interaction types reasoning, not 'planning'"
    assert client.get(f"{API}/probe/planning", headers=bearer(unlimited)).status_code == 200
    assert client.get(f"{API}/probe/planning", headers=api.admin).status_code == 200
    viewer = client.get(f"{API}/probe/reasoning", headers=api.viewer)
    assert viewer.status_code == 403
    assert problem_of(viewer)["detail"].startswith("This needs a client or admin token; viewer tokens may only read")


# ------------------------------------------------------------------------------------------------ cheap checks


@pytest.fixture
def long_ttl_app(
    migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> Iterator[tuple[LLMConfigService, TestClient, dict[str, str]]]:
    """An app whose token snapshot is refreshed only by its own writes (TTL of an hour)."""
    service = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=3600))
    token, _ = TokenService(sessions=service.sessions).create(role="admin", name="admin")
    try:
        with TestClient(create_app(service.settings, service=service)) as client:
            yield service, client, bearer(token)
    finally:
        service.close()


def test_checking_a_known_token_asks_the_database_nothing(
    long_ttl_app: tuple[LLMConfigService, TestClient, dict[str, str]],
) -> None:
    service, client, admin = long_ttl_app
    tokens: TokenService = client.app.state.tokens  # type: ignore[attr-defined]
    token = admin["Authorization"].removeprefix("Bearer ")
    assert tokens.authenticate(token) is not None  # loads the snapshot and records the first use
    statements: list[str] = []
    event.listen(service.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    callers = [tokens.authenticate(token) for _ in range(200)]

    assert all(caller is not None and caller.name == "token:admin" for caller in callers)
    assert tokens.authenticate("llmc_unknown") is None
    assert statements == []


def test_a_token_revoked_over_rest_is_refused_at_once_whatever_the_ttl(
    long_ttl_app: tuple[LLMConfigService, TestClient, dict[str, str]],
) -> None:
    _, client, admin = long_ttl_app
    created = client.post(TOKENS, json={"name": "short-lived", "role": "viewer"}, headers=admin).json()
    headers = bearer(created["token"])
    assert client.get(f"{API}/config", headers=headers).status_code == 200  # created here: known at once

    assert client.delete(f"{TOKENS}/{created['info']['id']}", headers=admin).status_code == 204

    assert client.get(f"{API}/config", headers=headers).status_code == 401
