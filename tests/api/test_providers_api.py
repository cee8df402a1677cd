"""/providers over HTTP: create, read, partial update, optimistic locking, delete, validation, catalog.

Runs on SQLite and PostgreSQL (through the ``api`` fixture) against the loopback OpenAI peer. Input that
is rejected before the database is touched is checked on SQLite only.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import OPENAI_PEER_KEY, free_tcp_port
from tests.peers import OpenAIPeer

PROVIDERS = f"{API}/providers"
VALIDATION_KEYS = {"ok", "status", "detail", "latency_ms", "models_discovered"}
PEER_CATALOG = {"gpt-4o": "chat", "gpt-4o-mini": "chat", "local-chat": "chat", "text-embedding-3-small": "embeddings"}
# For input that is rejected before the database is touched: one backend is enough.
sqlite_only = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


# ------------------------------------------------------------------------------------------------ helpers


def add_provider(
    client: TestClient,
    api: ApiContext,
    *,
    name: str = "peer",
    base_url: str,
    api_key: str | None = OPENAI_PEER_KEY,
    provider_type: str = "openai",
    validate: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "provider_type": provider_type, "api_base_url": base_url}
    if api_key is not None:
        body["api_key"] = api_key
    response = client.post(PROVIDERS, params={"validate": str(validate).lower()}, json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    provider: dict[str, Any] = response.json()
    return provider


def validate(client: TestClient, api: ApiContext, provider_id: str) -> dict[str, Any]:
    response = client.post(f"{PROVIDERS}/{provider_id}/validate", headers=api.admin)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert set(result) == VALIDATION_KEYS
    return result


def fetch(client: TestClient, api: ApiContext, provider_id: str) -> dict[str, Any]:
    response = client.get(f"{PROVIDERS}/{provider_id}", headers=api.viewer)
    assert response.status_code == 200, response.text
    provider: dict[str, Any] = response.json()
    return provider


def patch(client: TestClient, api: ApiContext, provider_id: str, body: dict[str, Any], **headers: str) -> Any:
    return client.patch(f"{PROVIDERS}/{provider_id}", json=body, headers={**api.admin, **headers})


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_tcp_port()}/v1"


# ------------------------------------------------------------------------------------------------ create and read


def test_create_returns_201_with_a_hint_and_no_key_field(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    response = client.post(
        PROVIDERS,
        json={
            "name": "peer",
            "provider_type": "openai",
            "api_base_url": openai_peer.base_url,
            "api_key": OPENAI_PEER_KEY,
        },
        headers=api.admin,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert "api_key" not in body
    assert OPENAI_PEER_KEY not in response.text
    assert body["has_api_key"] is True
    assert 0 < len(body["api_key_hint"]) <= 4 and OPENAI_PEER_KEY.endswith(body["api_key_hint"])
    assert body["name"] == "peer" and body["provider_type"] == "openai" and body["enabled"] is True
    assert body["api_base_url"] == openai_peer.base_url
    assert body["validation_status"] == "never" and body["version"] == 1
    assert openai_peer.requests == []  # over the API, validate defaults to false

    keyless = add_provider(client, api, name="keyless", base_url=openai_peer.base_url, api_key=None)
    assert keyless["has_api_key"] is False and keyless["api_key_hint"] is None


def test_create_with_validate_checks_the_peer_and_stores_its_catalog(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    body = add_provider(client, api, base_url=openai_peer.base_url, validate=True)

    assert body["validation_status"] == "ok" and body["validated_at"] is not None
    assert len(openai_peer.requests_to("/v1/models", "GET")) == 1
    assert openai_peer.last_request.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"
    models = client.get(f"{PROVIDERS}/{body['id']}/models", headers=api.viewer).json()
    assert {m["model_name"]: m["kind"] for m in models} == PEER_CATALOG


def assert_failed_check(response: Any, status: str, phrase: str) -> dict[str, Any]:
    """A 422 problem that carries the check's outcome, as POST /providers/{id}/validate would report it."""
    assert response.status_code == 422, response.text
    body = problem_of(response)
    result = body["validation"]
    assert set(result) == VALIDATION_KEYS
    assert result["ok"] is False and result["status"] == status and result["models_discovered"] == 0
    assert phrase in result["detail"] and phrase in body["detail"]
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] >= 0
    assert OPENAI_PEER_KEY not in response.text
    return result


def assert_nothing_stored(client: TestClient, api: ApiContext) -> None:
    assert client.get(PROVIDERS, headers=api.viewer).json() == []
    assert not [e for e in api.service.audit.entries(limit=500) if e.action.startswith("provider.")]


def test_create_with_validate_against_a_closed_port_is_422_with_the_check_and_stores_nothing(
    client: TestClient, api: ApiContext
) -> None:
    response = client.post(
        PROVIDERS,
        params={"validate": "true"},
        json={"name": "down", "provider_type": "custom", "api_base_url": closed_port_url(), "api_key": OPENAI_PEER_KEY},
        headers=api.admin,
    )

    assert_failed_check(response, "unreachable", "Cannot connect")
    assert_nothing_stored(client, api)


@pytest.mark.request_timeout(1)
@pytest.mark.parametrize(
    ("behaviour", "api_key", "status", "phrase"),
    [
        ("ok", "sk-wrong-key-0000000000", "unauthorized", "rejected"),
        ("html", OPENAI_PEER_KEY, "bad_response", "HTML"),
        ("error500", OPENAI_PEER_KEY, "bad_response", "500"),
        ("hang", OPENAI_PEER_KEY, "timeout", "did not answer"),
    ],
)
def test_create_with_validate_of_a_failing_provider_is_422_naming_the_status_and_stores_nothing(
    client: TestClient,
    api: ApiContext,
    openai_peer: OpenAIPeer,
    behaviour: str,
    api_key: str,
    status: str,
    phrase: str,
) -> None:
    openai_peer.behaviour = behaviour
    openai_peer.hang_seconds = 3
    body = {"name": "failing", "provider_type": "openai", "api_base_url": openai_peer.base_url, "api_key": api_key}

    response = client.post(PROVIDERS, params={"validate": "true"}, json=body, headers=api.admin)

    assert_failed_check(response, status, phrase)
    assert api_key not in response.text
    assert_nothing_stored(client, api)


def test_list_is_sorted_by_name_and_get_finds_by_id_and_by_name(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    zeta = add_provider(client, api, name="zeta", base_url=openai_peer.base_url)
    alpha = add_provider(client, api, name="alpha", base_url=openai_peer.base_url)

    listed = client.get(PROVIDERS, headers=api.viewer)

    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == ["alpha", "zeta"]
    assert all("api_key" not in p for p in listed.json())
    assert fetch(client, api, zeta["id"]) == zeta
    assert fetch(client, api, "alpha")["id"] == alpha["id"]


# ------------------------------------------------------------------------------------------------ update


def test_patch_is_partial_keeps_an_omitted_key_and_null_removes_it(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = add_provider(client, api, base_url=openai_peer.base_url)
    pid = created["id"]

    renamed = patch(client, api, pid, {"name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert body["name"] == "renamed" and body["version"] == 2
    assert body["api_base_url"] == created["api_base_url"] and body["enabled"] is True
    assert body["has_api_key"] is True and body["api_key_hint"] == created["api_key_hint"]
    # The peer insists on its key, so an ok validation proves that the key survived the rename.
    assert validate(client, api, pid)["status"] == "ok"

    removed = patch(client, api, pid, {"api_key": None})
    assert removed.status_code == 200, removed.text
    assert removed.json()["has_api_key"] is False and removed.json()["api_key_hint"] is None
    assert removed.json()["validation_status"] == "never"  # a changed provider must be checked again
    assert validate(client, api, pid)["status"] == "unauthorized"
    assert "authorization" not in openai_peer.last_request.headers

    restored = patch(client, api, pid, {"api_key": OPENAI_PEER_KEY, "enabled": False})
    assert restored.status_code == 200, restored.text
    assert restored.json()["api_key_hint"] == OPENAI_PEER_KEY[-4:] and restored.json()["enabled"] is False
    assert validate(client, api, pid)["status"] == "ok"
    assert fetch(client, api, pid)["version"] == 4


def test_patch_with_a_stale_version_is_409_and_changes_nothing(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]
    assert patch(client, api, pid, {"name": "second", "version": 1}).status_code == 200
    before = fetch(client, api, pid)

    response = patch(client, api, pid, {"name": "third", "api_key": None, "version": 1})

    assert response.status_code == 409
    detail = problem_of(response)["detail"]
    assert "changed by someone else" in detail and "version 1" in detail and "now at 2" in detail
    assert fetch(client, api, pid) == before
    assert before["name"] == "second" and before["has_api_key"] is True


def test_if_match_is_honoured_like_version(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]

    ok = patch(client, api, pid, {"name": "second"}, **{"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2

    stale = patch(client, api, pid, {"name": "third"}, **{"If-Match": "1"})
    assert stale.status_code == 409 and "changed by someone else" in problem_of(stale)["detail"]
    assert fetch(client, api, pid)["name"] == "second"

    weak = patch(client, api, pid, {"name": "third"}, **{"If-Match": 'W/"2"'})
    assert weak.status_code == 200 and weak.json()["name"] == "third"

    garbage = patch(client, api, pid, {"name": "fourth"}, **{"If-Match": "*"})
    assert garbage.status_code == 422 and "If-Match must be a version number" in problem_of(garbage)["detail"]

    stale_delete = client.delete(f"{PROVIDERS}/{pid}", headers={**api.admin, "If-Match": "2"})
    assert stale_delete.status_code == 409 and "now at 3" in problem_of(stale_delete)["detail"]
    assert fetch(client, api, pid)["name"] == "third"


def test_validation_is_not_an_edit_and_does_not_bump_the_version(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]
    validate(client, api, pid)

    assert fetch(client, api, pid)["version"] == 1
    assert patch(client, api, pid, {"enabled": False, "version": 1}).status_code == 200


# ------------------------------------------------------------------------------------------------ delete


def test_delete_is_204_and_the_provider_is_gone(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url, validate=True)["id"]

    response = client.delete(f"{PROVIDERS}/{pid}", headers=api.admin)

    assert response.status_code == 204 and response.content == b""
    assert client.get(PROVIDERS, headers=api.viewer).json() == []
    gone = client.get(f"{PROVIDERS}/{pid}", headers=api.viewer)
    assert gone.status_code == 404 and "No provider" in problem_of(gone)["detail"]


def test_delete_while_in_use_is_409_naming_the_interaction_types(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    main = add_provider(client, api, name="main", base_url=openai_peer.base_url, validate=True)
    backup = add_provider(client, api, name="backup", base_url=openai_peer.base_url, validate=True)
    reasoning = {"provider_id": main["id"], "model_name": "gpt-4o"}
    tools = {**reasoning, "fallbacks": [{"provider_id": backup["id"], "model_name": "gpt-4o-mini"}]}
    assert client.put(f"{API}/config/reasoning", json=reasoning, headers=api.admin).status_code == 200
    assert client.put(f"{API}/config/tools", json=tools, headers=api.admin).status_code == 200

    used = client.delete(f"{PROVIDERS}/{main['id']}", headers=api.admin)
    assert used.status_code == 409
    detail = problem_of(used)["detail"]
    assert "in use by" in detail and "reasoning" in detail and "tools" in detail

    fallback = client.delete(f"{PROVIDERS}/{backup['id']}", headers=api.admin)
    assert fallback.status_code == 409
    assert "tools" in problem_of(fallback)["detail"] and "reasoning" not in problem_of(fallback)["detail"]

    assert len(client.get(PROVIDERS, headers=api.viewer).json()) == 2


# ------------------------------------------------------------------------------------------------ validate


def test_validate_ok_reports_latency_and_discovered_models(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]

    result = validate(client, api, pid)

    assert result["ok"] is True and result["status"] == "ok"
    assert result["models_discovered"] == 4 and "4 models" in result["detail"]
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] >= 0
    stored = fetch(client, api, pid)
    assert stored["validation_status"] == "ok" and stored["validation_error"] is None
    assert stored["validated_at"] is not None


def test_validate_reports_unauthorized_unreachable_and_bad_response(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    wrong_key = "sk-not-the-peer-key-123456"
    pid = add_provider(client, api, base_url=openai_peer.base_url, api_key=wrong_key)["id"]

    unauthorized = validate(client, api, pid)
    assert (unauthorized["ok"], unauthorized["status"]) == (False, "unauthorized")
    assert "rejected the API key" in unauthorized["detail"] and unauthorized["models_discovered"] == 0
    assert wrong_key not in str(unauthorized)
    stored = fetch(client, api, pid)
    assert stored["validation_status"] == "failed" and "rejected the API key" in stored["validation_error"]

    assert patch(client, api, pid, {"api_key": OPENAI_PEER_KEY}).status_code == 200
    openai_peer.behaviour = "html"
    bad_response = validate(client, api, pid)
    assert (bad_response["ok"], bad_response["status"]) == (False, "bad_response")
    assert "text/html" in bad_response["detail"] and "not JSON" in bad_response["detail"]

    assert patch(client, api, pid, {"api_base_url": closed_port_url(), "keep_api_key": True}).status_code == 200
    unreachable = validate(client, api, pid)
    assert (unreachable["ok"], unreachable["status"]) == (False, "unreachable")
    assert "Cannot connect" in unreachable["detail"]
    assert fetch(client, api, pid)["validation_status"] == "failed"


@pytest.mark.request_timeout(1)
def test_validate_reports_a_hanging_provider_as_timeout(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]
    openai_peer.behaviour = "hang"
    openai_peer.hang_seconds = 10
    timeout = validate(client, api, pid)
    assert (timeout["ok"], timeout["status"]) == (False, "timeout")
    assert "did not answer within 1 s" in timeout["detail"]
    assert fetch(client, api, pid)["validation_status"] == "failed"


# ------------------------------------------------------------------------------------------------ models


def test_models_lists_the_catalog_and_refresh_rediscovers(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]
    url = f"{PROVIDERS}/{pid}/models"
    assert client.get(url, headers=api.viewer).json() == []  # never validated: empty catalog

    validate(client, api, pid)
    openai_peer.models.append("brand-new-model")
    cached = client.get(url, headers=api.viewer)
    assert cached.status_code == 200
    assert {m["model_name"]: m["kind"] for m in cached.json()} == PEER_CATALOG
    assert set(cached.json()[0]) >= {"model_name", "kind", "display_name", "discovered_at"}

    # Refreshing calls the provider and rewrites the catalog: admin only.
    assert client.get(url, params={"refresh": "true"}, headers=api.viewer).status_code == 403
    refreshed = client.get(url, params={"refresh": "true"}, headers=api.admin)
    assert refreshed.status_code == 200, refreshed.text
    assert "brand-new-model" in {m["model_name"] for m in refreshed.json()}

    openai_peer.behaviour = "html"
    failed = client.get(url, params={"refresh": "true"}, headers=api.admin)
    result = assert_failed_check(failed, "bad_response", "HTML")
    assert "Cannot refresh the models" in problem_of(failed)["detail"] and result["detail"] in failed.json()["detail"]
    assert len(client.get(url, headers=api.viewer).json()) == 5  # the last good catalog is kept


# ------------------------------------------------------------------------------------------------ 404 and 409


def test_unknown_provider_is_404_on_every_route(client: TestClient, api: ApiContext) -> None:
    missing = f"{PROVIDERS}/0000-missing"
    for method, url, body in [
        ("GET", missing, None),
        ("PATCH", missing, {"enabled": False}),
        ("DELETE", missing, None),
        ("POST", f"{missing}/validate", None),
        ("GET", f"{missing}/models", None),
    ]:
        response = client.request(method, url, json=body, headers=api.admin)
        assert response.status_code == 404, (method, url)
        assert "No provider '0000-missing'" in problem_of(response)["detail"]


def test_duplicate_name_is_409_on_create_and_on_rename(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    add_provider(client, api, name="taken", base_url=openai_peer.base_url)
    other = add_provider(client, api, name="other", base_url=openai_peer.base_url)

    duplicate = client.post(
        PROVIDERS,
        json={
            "name": "taken",
            "provider_type": "custom",
            "api_base_url": openai_peer.base_url,
            "api_key": OPENAI_PEER_KEY,
        },
        headers=api.admin,
    )
    assert duplicate.status_code == 409
    assert "named 'taken' already exists" in problem_of(duplicate)["detail"]
    assert OPENAI_PEER_KEY not in duplicate.text

    renamed = patch(client, api, other["id"], {"name": "taken"})
    assert renamed.status_code == 409 and "already exists" in problem_of(renamed)["detail"]
    assert sorted(p["name"] for p in client.get(PROVIDERS, headers=api.viewer).json()) == ["other", "taken"]


# ------------------------------------------------------------------------------------------------ 422


@sqlite_only
@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"provider_type": "mistral", "api_base_url": "http://127.0.0.1:1/v1"}, "'openai', 'anthropic' or 'custom'"),
        ({"provider_type": "custom", "api_base_url": "not-a-url"}, "must be an absolute http:// or https:// URL"),
        ({"provider_type": "custom", "api_base_url": "ftp://127.0.0.1/v1"}, "must be an absolute http:// or https://"),
        ({"provider_type": "custom", "api_base_url": "http://u:pw@127.0.0.1/v1"}, "must not contain credentials"),
        ({"provider_type": "custom", "api_base_url": "http://127.0.0.1/v1?x=1"}, "must not have a query string"),
        ({"provider_type": "custom"}, "needs a base URL"),
        ({"provider_type": "openai", "name": "bad name!"}, "name: String should match pattern"),
    ],
    ids=["unknown-type", "not-a-url", "ftp", "credentials", "query", "no-base-url", "bad-name"],
)
def test_invalid_provider_is_422_naming_the_problem_and_nothing_is_stored(
    client: TestClient, api: ApiContext, body: dict[str, Any], phrase: str
) -> None:
    response = client.post(PROVIDERS, json={"name": "bad", "api_key": OPENAI_PEER_KEY, **body}, headers=api.admin)

    assert response.status_code == 422
    assert phrase in problem_of(response)["detail"]
    assert OPENAI_PEER_KEY not in response.text
    assert client.get(PROVIDERS, headers=api.viewer).json() == []


@sqlite_only
def test_patch_with_a_bad_base_url_is_422_and_changes_nothing(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = add_provider(client, api, base_url=openai_peer.base_url)

    response = patch(client, api, created["id"], {"api_base_url": "gopher://x", "api_key": None})

    assert response.status_code == 422 and "must be an absolute" in problem_of(response)["detail"]
    assert fetch(client, api, created["id"]) == created


@sqlite_only
def test_rejected_keys_are_never_echoed_in_422_answers(client: TestClient, api: ApiContext) -> None:
    huge_key = "sk-canary-" + "x" * 4990
    add_provider(client, api, name="small", base_url="http://127.0.0.1:9/v1")
    attempts = [
        ("POST", PROVIDERS, {"name": "big", "provider_type": "openai", "api_key": huge_key}, "api_key"),
        ("PATCH", f"{PROVIDERS}/small", {"api_key": huge_key}, "api_key"),
        ("POST", PROVIDERS, {"name": "t", "provider_type": "openai", "apikey": "sk-canary-typo-1234"}, "apikey"),
        ("POST", PROVIDERS, {"name": "l", "provider_type": "openai", "api_key": ["sk-canary-in-list"]}, "api_key"),
        ("PATCH", f"{PROVIDERS}/small", {"api_key": {"value": "sk-canary-in-object"}}, "api_key"),
    ]
    for method, url, body, field in attempts:
        response = client.request(method, url, json=body, headers=api.admin)
        assert response.status_code == 422, (body, response.text)
        assert field in problem_of(response)["detail"]
        assert "sk-canary" not in response.text, response.text
        assert "xxxxxxxxxx" not in response.text
    assert [p["name"] for p in client.get(PROVIDERS, headers=api.viewer).json()] == ["small"]


# ------------------------------------------------------------------------------------------------ keys in odd places


@sqlite_only
@pytest.mark.parametrize(
    "template",
    ["http://127.0.0.1:9/v1?api_key={key}", "http://127.0.0.1:9/v1#{key}", "ftp://user:{key}@127.0.0.1/v1"],
    ids=["query", "fragment", "ftp-userinfo"],
)
def test_a_key_inside_a_rejected_base_url_is_not_echoed(client: TestClient, api: ApiContext, template: str) -> None:
    key = "sk-canary-in-url-8c1f2e9d7a6b"

    response = client.post(
        PROVIDERS,
        json={"name": "pasted", "provider_type": "custom", "api_base_url": template.format(key=key)},
        headers=api.admin,
    )

    assert response.status_code == 422
    assert key not in response.text


@sqlite_only
def test_a_non_ascii_key_is_rejected_or_reported_never_a_server_error(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    body = {"provider_type": "custom", "api_base_url": openai_peer.base_url, "api_key": "sk-ünïcode-key-1234567"}

    checked = client.post(PROVIDERS, params={"validate": "true"}, json={"name": "checked", **body}, headers=api.admin)
    assert checked.status_code == 422, checked.text
    stored = client.post(PROVIDERS, json={"name": "stored", **body}, headers=api.admin)
    if stored.status_code == 201:
        result = client.post(f"{PROVIDERS}/stored/validate", headers=api.admin)
        assert result.status_code == 200 and result.json()["ok"] is False, result.text
    else:
        assert stored.status_code == 422


def test_patch_moving_a_keyed_provider_to_another_origin_is_422_until_the_key_is_sent_or_kept(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    created = add_provider(client, api, base_url=f"http://localhost:{openai_peer.port}/v1")
    pid = created["id"]
    trail = client.get(f"{API}/audit", headers=api.viewer).json()

    refused = patch(client, api, pid, {"api_base_url": openai_peer.base_url, "name": "moved"})

    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    detail = problem_of(refused)["detail"]
    assert f"another origin (http://localhost:{openai_peer.port} -> http://127.0.0.1:{openai_peer.port})" in detail
    assert "send the key again" in detail and '"keep_api_key": true' in detail
    assert OPENAI_PEER_KEY not in refused.text
    assert fetch(client, api, pid) == created  # not even the name changed
    assert client.get(f"{API}/audit", headers=api.viewer).json() == trail

    kept = patch(client, api, pid, {"api_base_url": openai_peer.base_url, "keep_api_key": True})

    assert kept.status_code == 200, kept.text
    assert kept.json()["api_base_url"] == openai_peer.base_url and kept.json()["has_api_key"] is True
    assert "keep_api_key" not in kept.json()
    entry = client.get(f"{API}/audit", headers=api.viewer).json()[0]
    assert (entry["action"], entry["target_id"]) == ("provider.update.key_kept_across_origin", pid)
    assert entry["before"]["api_base_url"] == created["api_base_url"]
    assert entry["after"]["api_base_url"] == openai_peer.base_url
    assert OPENAI_PEER_KEY not in str(entry)
    assert validate(client, api, pid)["status"] == "ok"  # the kept key reaches the peer


@sqlite_only
def test_patch_on_the_same_origin_keeps_the_key_and_both_key_choices_at_once_are_422(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer
) -> None:
    pid = add_provider(client, api, base_url=openai_peer.base_url)["id"]

    moved_path = patch(client, api, pid, {"api_base_url": f"{openai_peer.root_url}/openai/v1"})
    assert moved_path.status_code == 200 and moved_path.json()["has_api_key"] is True
    both = patch(client, api, pid, {"api_base_url": "http://127.0.0.2:9/v1", "api_key": "sk-x", "keep_api_key": True})
    assert both.status_code == 422 and "either a new api_key or keep_api_key" in problem_of(both)["detail"]
    assert fetch(client, api, pid)["api_base_url"] == f"{openai_peer.root_url}/openai/v1"
