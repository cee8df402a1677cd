"""/audit over HTTP (one entry per change, paging, no keys), tokens and roles (401, 403, revocation).

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from llmconfig.tokens import TokenService
from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

AUDIT = f"{API}/audit"
SECOND_KEY = "sk-canary-rotated-key-5a9d3c7e1f"


# ------------------------------------------------------------------------------------------------ helpers


def audit_trail(client: TestClient, api: ApiContext, **params: int) -> list[dict[str, Any]]:
    response = client.get(AUDIT, params=params, headers=api.viewer)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


class AuditWatch:
    """Remembers the newest entry id; :meth:`single` returns the one entry added since, and moves on."""

    def __init__(self, client: TestClient, api: ApiContext) -> None:
        self.client, self.api = client, api
        self.last_id = max((e["id"] for e in audit_trail(client, api, limit=500)), default=0)

    def added(self) -> list[dict[str, Any]]:
        entries = [e for e in audit_trail(self.client, self.api, limit=500) if e["id"] > self.last_id]
        if entries:
            self.last_id = max(e["id"] for e in entries)
        return entries

    def single(self, response: Any, status: int, action: str, target_id: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        entries = self.added()
        assert [e["action"] for e in entries] == [action]
        entry = entries[0]
        assert entry["actor"] == "token:test-admin" and entry["target_id"] == target_id
        return entry


# ------------------------------------------------------------------------------------------------ audit


def test_every_change_leaves_exactly_one_audit_entry(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    watch = AuditWatch(client, api)
    admin = api.admin

    created = client.post(
        f"{API}/providers",
        params={"validate": "true"},
        json={
            "name": "peer",
            "provider_type": "openai",
            "api_base_url": openai_peer.base_url,
            "api_key": OPENAI_PEER_KEY,
        },
        headers=admin,
    )
    pid = created.json()["id"]
    entry = watch.single(created, 201, "provider.create", pid)
    assert entry["target_type"] == "provider" and entry["before"] is None
    assert entry["after"]["name"] == "peer" and entry["after"]["has_api_key"] is True

    entry = watch.single(
        client.patch(f"{API}/providers/{pid}", json={"api_key": SECOND_KEY}, headers=admin), 200, "provider.update", pid
    )
    assert entry["before"]["api_key_hint"] == OPENAI_PEER_KEY[-4:]
    assert entry["after"]["api_key_hint"] == SECOND_KEY[-4:] and entry["after"]["version"] == 2
    client.patch(f"{API}/providers/{pid}", json={"api_key": OPENAI_PEER_KEY}, headers=admin)
    watch.added()

    reasoning = {"provider_id": pid, "model_name": "gpt-4o", "temperature": 0.5}
    entry = watch.single(
        client.put(f"{API}/config/reasoning", json=reasoning, headers=admin), 200, "config.create", "reasoning"
    )
    assert entry["target_type"] == "config" and entry["before"] is None and entry["after"]["temperature"] == 0.5

    changed = {**reasoning, "temperature": 0.9, "version": 1}
    entry = watch.single(
        client.put(f"{API}/config/reasoning", json=changed, headers=admin), 200, "config.update", "reasoning"
    )
    assert (entry["before"]["temperature"], entry["after"]["temperature"]) == (0.5, 0.9)
    assert (entry["before"]["version"], entry["after"]["version"]) == (1, 2)

    override_url = f"{API}/users/u-1/config/reasoning"
    entry = watch.single(
        client.put(override_url, json=reasoning, headers=admin), 200, "override.create", "u-1/reasoning"
    )
    assert entry["before"] is None and entry["after"]["source"] == "user"
    entry = watch.single(client.delete(override_url, headers=admin), 204, "override.delete", "u-1/reasoning")
    assert entry["before"]["model_name"] == "gpt-4o" and entry["after"] is None

    new_type = client.post(f"{API}/interaction-types", json={"name": "notes", "kind": "chat"}, headers=admin)
    entry = watch.single(new_type, 201, "interaction_type.create", "notes")
    assert entry["after"]["kind"] == "chat"
    entry = watch.single(
        client.delete(f"{API}/interaction-types/notes", headers=admin), 204, "interaction_type.delete", "notes"
    )
    assert entry["before"]["name"] == "notes" and entry["after"] is None

    spare = client.post(
        f"{API}/providers",
        json={"name": "spare", "provider_type": "custom", "api_base_url": openai_peer.base_url},
        headers=admin,
    )
    spare_id = spare.json()["id"]
    watch.single(spare, 201, "provider.create", spare_id)
    entry = watch.single(client.delete(f"{API}/providers/{spare_id}", headers=admin), 204, "provider.delete", spare_id)
    assert entry["before"]["name"] == "spare" and entry["after"] is None

    # Refused changes and reads leave nothing.
    refused = [
        client.put(f"{API}/config/reasoning", json=changed, headers=admin),  # stale version
        client.delete(f"{API}/providers/{pid}", headers=admin),  # in use
        client.put(f"{API}/config/reasoning", json={**reasoning, "temperature": 5}, headers=admin),
        client.post(f"{API}/interaction-types", json={"name": "reasoning", "kind": "chat"}, headers=admin),
        client.patch(f"{API}/providers/{pid}", json={"name": "x"}, headers=api.viewer),
        client.get(f"{API}/config", headers=admin),
    ]
    assert [r.status_code for r in refused] == [409, 409, 422, 409, 403, 200]
    assert watch.added() == []


def test_audit_pages_through_without_overlap(client: TestClient, api: ApiContext) -> None:
    for number in range(7):
        response = client.post(
            f"{API}/interaction-types", json={"name": f"type-{number}", "kind": "chat"}, headers=api.admin
        )
        assert response.status_code == 201
    everything = audit_trail(client, api, limit=500)
    assert len(everything) == 9  # two tokens made by the fixture, seven types

    pages: list[list[dict[str, Any]]] = []
    page = audit_trail(client, api, limit=4)
    while page:
        pages.append(page)
        page = audit_trail(client, api, limit=4, before=min(e["id"] for e in page))

    assert [len(p) for p in pages] == [4, 4, 1]
    ids = [e["id"] for p in pages for e in p]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first, no overlap
    assert ids == [e["id"] for e in everything]
    assert pages[0][0]["action"] == "interaction_type.create" and pages[0][0]["target_id"] == "type-6"
    assert [e["action"] for e in pages[-1]] == ["token.create"]

    assert client.get(AUDIT, params={"limit": 0}, headers=api.viewer).status_code == 422
    assert client.get(AUDIT, params={"limit": 501}, headers=api.viewer).status_code == 422


def test_no_api_key_appears_in_any_audit_entry(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> None:
    created = client.post(
        f"{API}/providers",
        params={"validate": "true"},
        json={
            "name": "peer",
            "provider_type": "openai",
            "api_base_url": openai_peer.base_url,
            "api_key": OPENAI_PEER_KEY,
        },
        headers=api.admin,
    )
    pid = created.json()["id"]
    client.patch(f"{API}/providers/{pid}", json={"api_key": SECOND_KEY}, headers=api.admin)
    client.patch(f"{API}/providers/{pid}", json={"api_key": None}, headers=api.admin)
    client.delete(f"{API}/providers/{pid}", headers=api.admin)

    response = client.get(AUDIT, params={"limit": 500}, headers=api.viewer)
    stored = json.dumps([e.model_dump(mode="json") for e in api.service.audit.entries(limit=500)])

    assert [e["action"] for e in response.json()][:4] == [
        "provider.delete",
        "provider.update",
        "provider.update",
        "provider.create",
    ]
    for text in (response.text, stored):
        assert OPENAI_PEER_KEY not in text and SECOND_KEY not in text
        assert "local:v1:" not in text  # not even the encrypted reference


# ------------------------------------------------------------------------------------------------ tokens and roles


def test_a_token_works_until_it_is_revoked(client: TestClient, api: ApiContext) -> None:
    tokens = TokenService(sessions=api.service.sessions)
    token, info = tokens.create(role="admin", name="ci-bot")
    headers = {"Authorization": f"Bearer {token}"}
    assert info.token_prefix == token[:12] and info.revoked_at is None

    works = client.post(f"{API}/interaction-types", json={"name": "by-bot", "kind": "chat"}, headers=headers)
    assert works.status_code == 201
    assert audit_trail(client, api, limit=1)[0]["actor"] == "token:ci-bot"

    revoked = tokens.revoke(info.id)
    assert revoked.revoked_at is not None

    for response in (
        client.get(f"{API}/providers", headers=headers),
        client.post(f"{API}/interaction-types", json={"name": "after-revoke", "kind": "chat"}, headers=headers),
    ):
        assert response.status_code == 401
        assert "Unknown or revoked token" in problem_of(response)["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
    assert "after-revoke" not in {t["name"] for t in client.get(f"{API}/interaction-types", headers=api.viewer).json()}
    assert [e["action"] for e in audit_trail(client, api, limit=2)] == ["token.revoke", "interaction_type.create"]


def test_missing_or_invalid_token_is_401(client: TestClient, api: ApiContext) -> None:
    cases = [
        ({}, "Send an API token as 'Authorization: Bearer <token>'"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Send an API token"),
        ({"Authorization": "Bearer llmc_not-a-real-token"}, "Unknown or revoked token"),
        ({"Authorization": f"Bearer {api.admin_token}x"}, "Unknown or revoked token"),
    ]
    for headers, phrase in cases:
        response = client.get(f"{API}/config", headers=headers)
        assert response.status_code == 401, headers
        assert phrase in problem_of(response)["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
        assert api.admin_token not in response.text

    assert client.get("/health").status_code == 200  # probes need no token


def test_repeated_failed_authentication_is_throttled(client: TestClient, api: ApiContext) -> None:
    bad = {"Authorization": "Bearer llmc_guess"}
    statuses = [client.get(f"{API}/providers", headers=bad).status_code for _ in range(11)]

    assert statuses == [401] * 10 + [429]
    throttled = client.get(f"{API}/providers", headers=bad)
    assert throttled.status_code == 429 and "Too many failed authentication attempts" in problem_of(throttled)["detail"]
    assert int(throttled.headers["retry-after"]) >= 1


def test_viewer_reads_everything_including_audit_but_writes_nothing(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = client.post(
        f"{API}/providers",
        json={"name": "peer", "provider_type": "custom", "api_base_url": openai_peer.base_url},
        headers=api.admin,
    )
    pid = created.json()["id"]

    for url in [
        AUDIT,
        f"{API}/providers",
        f"{API}/providers/{pid}",
        f"{API}/providers/{pid}/models",
        f"{API}/config",
        f"{API}/config/summary",
        f"{API}/config/validate",
        f"{API}/interaction-types",
        f"{API}/users/u/config",
    ]:
        assert client.get(url, headers=api.viewer).status_code == 200, url
    assert audit_trail(client, api, limit=1)[0]["action"] == "provider.create"

    writes = [
        ("POST", f"{API}/providers", {"name": "v", "provider_type": "openai"}),
        ("PATCH", f"{API}/providers/{pid}", {"enabled": False}),
        ("DELETE", f"{API}/providers/{pid}", None),
        ("POST", f"{API}/providers/{pid}/validate", None),
        ("PUT", f"{API}/config/reasoning", {"provider_id": pid, "model_name": "gpt-4o"}),
        ("PUT", f"{API}/users/u/config/reasoning", {"provider_id": pid, "model_name": "gpt-4o"}),
        ("DELETE", f"{API}/users/u/config/reasoning", None),
        ("POST", f"{API}/interaction-types", {"name": "v", "kind": "chat"}),
        ("DELETE", f"{API}/interaction-types/reasoning", None),
    ]
    for method, url, body in writes:
        response = client.request(method, url, json=body, headers=api.viewer)
        assert response.status_code == 403, (method, url)
        assert "needs an admin token" in problem_of(response)["detail"]

    assert openai_peer.requests == []
    assert client.get(f"{API}/providers/{pid}", headers=api.viewer).json() == created.json()
    assert audit_trail(client, api, limit=1)[0]["action"] == "provider.create"
