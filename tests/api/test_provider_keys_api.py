"""/providers/{id}/keys over HTTP: add, list, remove, and what is refused (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

PROVIDERS = f"{API}/providers"
SECOND_KEY = "sk-canary-second-openai-4c1d8e2f"
sqlite_only = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


def provider(client: TestClient, api: ApiContext, peer: OpenAIPeer, *, provider_type: str = "openai") -> Any:
    created = client.post(
        PROVIDERS,
        headers=api.admin,
        json={
            "name": f"peer-{provider_type}",
            "provider_type": provider_type,
            "api_base_url": peer.base_url,
            "api_key": OPENAI_PEER_KEY,
        },
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_keys_are_added_listed_and_removed_and_none_is_ever_shown(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = provider(client, api, openai_peer)
    keys = f"{PROVIDERS}/{created['id']}/keys"

    listed = client.get(keys, headers=api.admin)
    assert listed.status_code == 200
    assert [(k["hint"], k["resting_until"]) for k in listed.json()] == [(OPENAI_PEER_KEY[-4:], None)]

    added = client.post(keys, headers=api.admin, json={"api_key": f"  {SECOND_KEY} "})
    assert added.status_code == 201, added.text
    assert set(added.json()) == {"key_id", "hint"} and added.json()["hint"] == SECOND_KEY[-4:]
    short = client.post(keys, headers=api.admin, json={"api_key": "sk-short"})
    assert short.status_code == 201 and short.json()["hint"] is None  # too short to show any of it

    listed = client.get(keys, headers=api.admin).json()
    assert [k["hint"] for k in listed] == [OPENAI_PEER_KEY[-4:], SECOND_KEY[-4:], None]
    assert listed[1]["key_id"] == added.json()["key_id"]
    after = client.get(f"{PROVIDERS}/{created['id']}", headers=api.admin).json()
    # The provider still shows its first key, and its version moved with each key.
    assert after["has_api_key"] is True and after["api_key_hint"] == OPENAI_PEER_KEY[-4:]
    assert after["version"] == created["version"] + 2

    removed = client.delete(f"{keys}/{listed[0]['key_id']}", headers=api.admin)
    assert removed.status_code == 204
    assert [k["hint"] for k in client.get(keys, headers=api.admin).json()] == [SECOND_KEY[-4:], None]
    assert client.get(f"{PROVIDERS}/{created['id']}", headers=api.admin).json()["api_key_hint"] == SECOND_KEY[-4:]

    audit = client.get(f"{API}/audit", headers=api.admin, params={"limit": 50})
    actions = [entry["action"] for entry in audit.json()]
    assert actions.count("provider.key.add") == 2 and actions.count("provider.key.remove") == 1
    for response in (added, short, removed, audit, client.get(keys, headers=api.admin)):
        assert SECOND_KEY not in response.text and OPENAI_PEER_KEY not in response.text


def test_the_single_api_key_of_patch_replaces_every_key(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = provider(client, api, openai_peer)
    keys = f"{PROVIDERS}/{created['id']}/keys"
    client.post(keys, headers=api.admin, json={"api_key": SECOND_KEY})
    patched = client.patch(f"{PROVIDERS}/{created['id']}", headers=api.admin, json={"api_key": SECOND_KEY})
    assert patched.status_code == 200 and patched.json()["api_key_hint"] == SECOND_KEY[-4:]
    assert [k["hint"] for k in client.get(keys, headers=api.admin).json()] == [SECOND_KEY[-4:]]
    cleared = client.patch(f"{PROVIDERS}/{created['id']}", headers=api.admin, json={"api_key": None})
    assert cleared.json()["has_api_key"] is False and client.get(keys, headers=api.admin).json() == []


def test_the_last_key_of_a_provider_in_use_cannot_be_removed_and_409_names_the_entries(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = provider(client, api, openai_peer)
    keys = f"{PROVIDERS}/{created['id']}/keys"
    for path in ("/config/reasoning", "/users/u-7/config/tools"):
        entry = client.put(
            f"{API}{path}", headers=api.admin, json={"provider_id": created["id"], "model_name": "gpt-4o"}
        )
        assert entry.status_code == 200, entry.text
    (only,) = client.get(keys, headers=api.admin).json()

    refused = client.delete(f"{keys}/{only['key_id']}", headers=api.admin)

    assert refused.status_code == 409
    detail = problem_of(refused)["detail"]
    assert "last API key" in detail and "reasoning" in detail and "u-7" in detail
    assert len(client.get(keys, headers=api.admin).json()) == 1  # nothing changed
    # With a second key, the first can go; the one left is then the last.
    client.post(keys, headers=api.admin, json={"api_key": SECOND_KEY})
    assert client.delete(f"{keys}/{only['key_id']}", headers=api.admin).status_code == 204
    (left,) = client.get(keys, headers=api.admin).json()
    assert client.delete(f"{keys}/{left['key_id']}", headers=api.admin).status_code == 409


def test_a_custom_provider_in_use_may_lose_its_last_key(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = provider(client, api, openai_peer, provider_type="custom")
    client.put(
        f"{API}/config/reasoning", headers=api.admin, json={"provider_id": created["id"], "model_name": "gpt-4o"}
    )
    keys = f"{PROVIDERS}/{created['id']}/keys"
    (only,) = client.get(keys, headers=api.admin).json()
    assert client.delete(f"{keys}/{only['key_id']}", headers=api.admin).status_code == 204
    assert client.get(f"{PROVIDERS}/{created['id']}", headers=api.admin).json()["has_api_key"] is False


def test_unknown_keys_and_providers_are_404(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> None:
    created = provider(client, api, openai_peer)
    keys = f"{PROVIDERS}/{created['id']}/keys"
    missing_key = client.delete(f"{keys}/no-such-key", headers=api.admin)
    assert missing_key.status_code == 404 and "no key" in problem_of(missing_key)["detail"]
    for method, path in (("GET", f"{PROVIDERS}/missing/keys"), ("DELETE", f"{PROVIDERS}/missing/keys/x")):
        assert client.request(method, path, headers=api.admin).status_code == 404
    assert client.post(f"{PROVIDERS}/missing/keys", headers=api.admin, json={"api_key": SECOND_KEY}).status_code == 404
    # A key of another provider is not this provider's key.
    other = client.post(
        PROVIDERS,
        headers=api.admin,
        json={"name": "other", "provider_type": "custom", "api_base_url": openai_peer.base_url, "api_key": SECOND_KEY},
    ).json()
    (foreign,) = client.get(f"{PROVIDERS}/{other['id']}/keys", headers=api.admin).json()
    assert client.delete(f"{keys}/{foreign['key_id']}", headers=api.admin).status_code == 404


@sqlite_only
@pytest.mark.parametrize(
    "body",
    [
        {"api_key": "sk-ключ-1234567890"},
        {"api_key": "sk-with space-1234567890"},
        {"api_key": "sk-line\nbreak-1234567890"},
        {"api_key": "   "},
        {"api_key": "x" * 4097},
        {},
        {"api_key": SECOND_KEY, "hint": "1234"},
        {"api_key": 12345678901234},
    ],
)
def test_a_key_that_is_not_header_safe_ascii_is_422_and_nothing_is_stored(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer, body: dict[str, Any]
) -> None:
    created = provider(client, api, openai_peer)
    keys = f"{PROVIDERS}/{created['id']}/keys"
    refused = client.post(keys, headers=api.admin, json=body)
    assert refused.status_code == 422
    problem_of(refused)
    assert "api_key" in refused.text or "hint" in refused.text  # the field that was wrong is named
    sent = body.get("api_key")
    if isinstance(sent, str) and sent.strip():
        assert sent not in refused.text  # never echoed back
    assert len(client.get(keys, headers=api.admin).json()) == 1


@sqlite_only
def test_keys_are_for_admins_only(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> None:
    created = provider(client, api, openai_peer)
    keys = f"{PROVIDERS}/{created['id']}/keys"
    (only,) = client.get(keys, headers=api.admin).json()
    assert client.get(keys, headers=api.viewer).status_code == 403
    assert client.post(keys, headers=api.viewer, json={"api_key": SECOND_KEY}).status_code == 403
    assert client.delete(f"{keys}/{only['key_id']}", headers=api.viewer).status_code == 403
    assert client.get(keys).status_code == 401
