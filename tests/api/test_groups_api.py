"""/groups, /users/{id}/groups and variants over HTTP, on SQLite and PostgreSQL; refused input on SQLite only."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmconfig.config import MAIN, choose
from llmconfig.llm.resolved import ResolvedConfig
from llmconfig.tokens import TokenService
from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

sqlite_only = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


@pytest.fixture
def provider(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> dict[str, Any]:
    response = client.post(
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
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if status != 204 else None


def body(model: str, **fields: Any) -> dict[str, Any]:
    return {"provider_id": "peer", "model_name": model, **fields}


def test_group_entries_memberships_and_where_each_type_comes_from(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    admin, viewer = api.admin, api.viewer
    ok(client.put(f"{API}/config/reasoning", json=body("gpt-4o"), headers=admin))
    entry = ok(client.put(f"{API}/groups/team-a/config/reasoning", json=body("gpt-4o-mini"), headers=admin))
    assert (entry["source"], entry["version"], entry["provider_name"]) == ("group:team-a", 1, "peer")
    ok(client.put(f"{API}/groups/org/config/tools", json=body("local-chat"), headers=admin))

    membership = ok(client.put(f"{API}/users/u-42/groups", json={"groups": ["team-a", "org"]}, headers=admin))
    assert membership == {"user_id": "u-42", "groups": ["team-a", "org"]}
    assert ok(client.get(f"{API}/users/u-42/groups", headers=viewer)) == membership
    assert ok(client.get(f"{API}/users/nobody/groups", headers=viewer)) == {"user_id": "nobody", "groups": []}

    effective = ok(client.get(f"{API}/users/u-42/config", headers=viewer))
    assert {name: e["source"] for name, e in effective.items()} == {"reasoning": "group:team-a", "tools": "group:org"}
    ok(client.put(f"{API}/users/u-42/config/tools", json=body("gpt-4o"), headers=admin))
    effective = ok(client.get(f"{API}/users/u-42/config", headers=viewer))
    assert (effective["tools"]["source"], effective["tools"]["model_name"]) == ("user", "gpt-4o")

    groups = ok(client.get(f"{API}/groups", headers=viewer))
    assert [(g["name"], g["members"], g["interaction_types"]) for g in groups] == [
        ("org", ["u-42"], ["tools"]),
        ("team-a", ["u-42"], ["reasoning"]),
    ]
    assert set(ok(client.get(f"{API}/groups/team-a/config", headers=viewer))) == {"reasoning"}

    # The resolve payload says where the entry comes from and carries the user's groups.
    resolved = ok(client.get(f"{API}/resolve/reasoning", params={"user_id": "u-42"}, headers=admin))
    assert (resolved["source"], resolved["groups"], resolved["targets"][0]["model_name"]) == (
        "group:team-a",
        ["team-a", "org"],
        "gpt-4o-mini",
    )

    # Versions, history and rollback, as for the global entry.
    ok(client.put(f"{API}/groups/team-a/config/reasoning", json=body("local-chat", version=1), headers=admin))
    stale = client.put(f"{API}/groups/team-a/config/reasoning", json=body("gpt-4o"), headers={**admin, "If-Match": "1"})
    assert stale.status_code == 409 and "version 1, it is now at 2" in problem_of(stale)["detail"]
    history = ok(client.get(f"{API}/groups/team-a/config/reasoning/history", headers=viewer))
    assert [(v["version"], v["entry"]["model_name"]) for v in history] == [(2, "local-chat"), (1, "gpt-4o-mini")]
    restored = ok(client.post(f"{API}/groups/team-a/config/reasoning/rollback", json={"version": 1}, headers=admin))
    assert (restored["version"], restored["model_name"]) == (3, "gpt-4o-mini")

    ok(client.delete(f"{API}/groups/team-a/config/reasoning", headers=admin), 204)
    missing = client.delete(f"{API}/groups/team-a/config/reasoning", headers=admin)
    assert missing.status_code == 404 and "Group 'team-a' has no entry for 'reasoning'" in problem_of(missing)["detail"]
    assert ok(client.get(f"{API}/users/u-42/config", headers=viewer))["reasoning"]["source"] == "global"

    ok(client.delete(f"{API}/groups/org", headers=admin), 204)
    assert ok(client.get(f"{API}/users/u-42/groups", headers=viewer))["groups"] == ["team-a"]
    gone = client.get(f"{API}/groups/org/config", headers=viewer)
    assert gone.status_code == 404 and "Unknown group 'org'; known groups: team-a" in problem_of(gone)["detail"]
    # Viewers read, only admins change.
    assert client.put(f"{API}/users/u-42/groups", json={"groups": []}, headers=viewer).status_code == 403
    assert client.delete(f"{API}/groups/team-a", headers=viewer).status_code == 403


def test_variants_over_http_and_the_resolve_payload_picks_like_the_library(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    variants = [{"name": "mini", "provider_id": "peer", "model_name": "gpt-4o-mini", "weight": 40}]
    entry = ok(
        client.put(f"{API}/config/reasoning", json=body("gpt-4o", weight=60, variants=variants), headers=api.admin)
    )
    assert (entry["weight"], [(v["name"], v["weight"], v["provider_name"]) for v in entry["variants"]]) == (
        60,
        [("mini", 40, "peer")],
    )
    assert ok(client.get(f"{API}/config", headers=api.viewer))["reasoning"]["variants"][0]["name"] == "mini"
    assert (
        "variants by weight: main 60, mini 40" in ok(client.get(f"{API}/config/summary", headers=api.viewer))["summary"]
    )

    client_token, _ = TokenService(sessions=api.service.sessions).create(role="client", name="agents")
    agents = {"Authorization": f"Bearer {client_token}"}
    for user in ("u-1", "u-2", "u-3", "u-4", "u-5", "u-6"):
        payload = ResolvedConfig.model_validate(
            ok(client.get(f"{API}/resolve/reasoning", params={"user_id": user}, headers=agents))
        )
        assert [(v.name, v.weight, v.targets[0].api_key) for v in payload.variants] == [("mini", 40, OPENAI_PEER_KEY)]
        picked = payload.pick(user)
        wanted = choose(payload, user)
        assert picked.variant == wanted
        assert picked.targets[0].model_name == ("gpt-4o" if wanted == MAIN else "gpt-4o-mini")
        assert api.service.config.effective(user)["reasoning"].variant == wanted

    # Usage events of client processes carry the variant; the report compares variants side by side.
    events = [
        {
            "at": "2026-12-01T10:00:00+00:00",
            "interaction_type": "reasoning",
            "user_id": f"u-{n}",
            "provider_id": provider["id"],
            "provider_name": "peer",
            "model_name": "gpt-4o-mini" if n % 3 == 0 else "gpt-4o",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "latency_ms": 100.0 + n,
            "success": n != 1,
            "error_class": None if n != 1 else "APIConnectionError",
            "variant": "mini" if n % 3 == 0 else MAIN,
        }
        for n in range(9)
    ]
    assert ok(client.post(f"{API}/usage/events", json={"events": events}, headers=agents), 202) == {"accepted": 9}
    assert api.service.usage_recorder.flush()
    report = ok(client.get(f"{API}/usage", params={"group_by": ["interaction_type", "variant"]}, headers=api.viewer))
    compared = {tuple(g["keys"]): (g["calls"], g["errors"], g["tokens_per_call"]) for g in report["groups"]}
    assert compared == {("reasoning", MAIN): (6, 1, 15.0), ("reasoning", "mini"): (3, 0, 15.0)}
    bad = {**events[0], "variant": "bad\nname"}
    assert client.post(f"{API}/usage/events", json={"events": [bad]}, headers=agents).status_code == 422


@sqlite_only
@pytest.mark.parametrize(
    ("variant", "named"),
    [
        ({"name": "canary", "provider_id": "peer", "model_name": "gpt-4o-mini", "weight": 0}, "variant 'canary'"),
        ({"name": "canary", "provider_id": "peer", "model_name": "gpt-4o-mini", "weight": 2.5}, "variant 'canary'"),
        ({"name": "main", "provider_id": "peer", "model_name": "gpt-4o-mini", "weight": 5}, "'main' is reserved"),
        ({"name": "emb", "provider_id": "peer", "model_name": "text-embedding-3-small", "weight": 5}, "Variant 'emb'"),
        ({"name": "gone", "provider_id": "peer", "model_name": "gpt-9", "weight": 5}, "Variant 'gone'"),
    ],
)
def test_a_bad_variant_is_422_naming_it_and_nothing_is_stored(
    client: TestClient, api: ApiContext, provider: dict[str, Any], variant: dict[str, Any], named: str
) -> None:
    for url in (
        f"{API}/config/reasoning",
        f"{API}/groups/team-a/config/reasoning",
        f"{API}/users/u-1/config/reasoning",
    ):
        response = client.put(url, json=body("gpt-4o", variants=[variant]), headers=api.admin)
        assert response.status_code == 422, response.text
        assert named in problem_of(response)["detail"]
    assert ok(client.get(f"{API}/config", headers=api.viewer)) == {}
    assert ok(client.get(f"{API}/groups", headers=api.viewer)) == []
    assert ok(client.get(f"{API}/users/u-1/config", headers=api.viewer)) == {}


@sqlite_only
@pytest.mark.parametrize("name", ["Team-A", "team%0Aa", "team%00a", "team%09a", "-x", "x" * 65])
def test_a_bad_group_name_is_422_wherever_it_appears_and_nothing_is_stored(
    client: TestClient, api: ApiContext, provider: dict[str, Any], name: str
) -> None:
    for method, path, payload in (
        ("PUT", f"/groups/{name}/config/reasoning", body("gpt-4o")),
        ("GET", f"/groups/{name}/config", None),
        ("DELETE", f"/groups/{name}", None),
        ("GET", f"/groups/{name}/config/reasoning/history", None),
    ):
        response = client.request(method, f"{API}{path}", json=payload, headers=api.admin)
        assert response.status_code == 422, (path, response.text)
        # NUL is refused by the guard in front of the app; everything else names the group name's rule.
        assert ("NUL" if "%00" in name else "group name") in problem_of(response)["detail"]
    shown = name.replace("%0A", "\n").replace("%00", "\x00").replace("%09", "\t")
    refused = client.put(f"{API}/users/u-1/groups", json={"groups": ["fine", shown]}, headers=api.admin)
    assert refused.status_code == 422
    assert ("NUL" if "%00" in name else "group name") in problem_of(refused)["detail"]
    twice = client.put(f"{API}/users/u-1/groups", json={"groups": ["fine", "fine"]}, headers=api.admin)
    assert twice.status_code == 422 and "group 'fine' is listed twice" in problem_of(twice)["detail"]
    assert ok(client.get(f"{API}/groups", headers=api.viewer)) == []
    assert ok(client.get(f"{API}/users/u-1/groups", headers=api.viewer))["groups"] == []
