"""/config over HTTP: the global configuration per interaction type, its summary and its validation.

Runs on SQLite and PostgreSQL; input rejected before the database is touched is checked on SQLite only.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer

CONFIG = f"{API}/config"
ENTRY_FIELDS = {
    "interaction_type",
    "kind",
    "provider_id",
    "provider_name",
    "model_name",
    "temperature",
    "max_tokens",
    "extra_params",
    "fallbacks",
    "version",
    "updated_at",
    "updated_by",
}
sqlite_only = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


# ------------------------------------------------------------------------------------------------ helpers


def add_provider(
    client: TestClient,
    api: ApiContext,
    peer: OpenAIPeer | AnthropicPeer,
    *,
    name: str,
    provider_type: str = "openai",
    api_key: str = OPENAI_PEER_KEY,
) -> dict[str, Any]:
    """A provider on ``peer``, validated so that its catalog is known."""
    base_url = peer.root_url if provider_type == "anthropic" else peer.base_url
    response = client.post(
        f"{API}/providers",
        params={"validate": "true"},
        json={"name": name, "provider_type": provider_type, "api_base_url": base_url, "api_key": api_key},
        headers=api.admin,
    )
    assert response.status_code == 201, response.text
    provider: dict[str, Any] = response.json()
    return provider


def put_config(client: TestClient, api: ApiContext, interaction_type: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"{CONFIG}/{interaction_type}", json=body, headers=api.admin)
    assert response.status_code == 200, response.text
    entry: dict[str, Any] = response.json()
    return entry


@pytest.fixture
def provider(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> dict[str, Any]:
    return add_provider(client, api, openai_peer, name="peer")


# ------------------------------------------------------------------------------------------------ read and write


def test_get_config_is_keyed_by_interaction_type(client: TestClient, api: ApiContext, provider: dict[str, Any]) -> None:
    assert client.get(CONFIG, headers=api.viewer).json() == {}
    put_config(client, api, "reasoning", {"provider_id": provider["id"], "model_name": "gpt-4o", "temperature": 0.7})
    put_config(client, api, "embeddings", {"provider_id": "peer", "model_name": "text-embedding-3-small"})

    response = client.get(CONFIG, headers=api.viewer)

    assert response.status_code == 200
    config = response.json()
    assert set(config) == {"reasoning", "embeddings"}
    assert set(config["reasoning"]) >= ENTRY_FIELDS
    assert config["reasoning"]["kind"] == "chat" and config["embeddings"]["kind"] == "embeddings"
    assert config["reasoning"]["provider_name"] == "peer" and config["reasoning"]["temperature"] == 0.7
    # A provider may be referred to by name; the entry stores its id.
    assert config["embeddings"]["provider_id"] == provider["id"]


def test_put_creates_then_updates_with_version_increments_and_updated_by(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    created = put_config(
        client,
        api,
        "reasoning",
        {"provider_id": provider["id"], "model_name": "gpt-4o", "temperature": 0.3, "max_tokens": 512},
    )
    assert created["version"] == 1 and created["updated_by"] == "token:test-admin"
    assert (created["model_name"], created["temperature"], created["max_tokens"]) == ("gpt-4o", 0.3, 512)
    assert created["extra_params"] == {} and created["fallbacks"] == []

    updated = put_config(
        client,
        api,
        "reasoning",
        {"provider_id": provider["id"], "model_name": "gpt-4o-mini", "extra_params": {"top_p": 0.5}, "version": 1},
    )
    assert updated["version"] == 2 and updated["model_name"] == "gpt-4o-mini"
    # Fields left out keep their value.
    assert updated["temperature"] == 0.3 and updated["max_tokens"] == 512
    assert updated["extra_params"] == {"top_p": 0.5}

    cleared = put_config(client, api, "reasoning", {"provider_id": "peer", "model_name": "gpt-4o", "max_tokens": None})
    assert cleared["version"] == 3 and cleared["max_tokens"] is None and cleared["temperature"] == 0.3

    assert client.get(f"{CONFIG}/reasoning", headers=api.viewer).json() == cleared


def test_updated_by_names_the_token_that_made_the_change(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    token, _ = api.app.state.tokens.create(role="admin", name="ops-alice")

    response = client.put(
        f"{CONFIG}/planning",
        json={"provider_id": provider["id"], "model_name": "gpt-4o"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["updated_by"] == "token:ops-alice"
    assert api.service.audit.entries(limit=1)[0].actor == "token:ops-alice"


def test_put_with_a_stale_version_is_409_and_changes_nothing(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    put_config(client, api, "tools", {"provider_id": provider["id"], "model_name": "gpt-4o-mini", "temperature": 0.1})
    current = put_config(client, api, "tools", {"provider_id": provider["id"], "model_name": "gpt-4o", "version": 1})

    stale = client.put(
        f"{CONFIG}/tools",
        json={"provider_id": provider["id"], "model_name": "local-chat", "temperature": 1.5, "version": 1},
        headers=api.admin,
    )
    assert stale.status_code == 409
    detail = problem_of(stale)["detail"]
    assert "changed by someone else" in detail and "version 1" in detail and "now at 2" in detail

    by_header = client.put(
        f"{CONFIG}/tools",
        json={"provider_id": provider["id"], "model_name": "local-chat"},
        headers={**api.admin, "If-Match": '"1"'},
    )
    assert by_header.status_code == 409 and "changed by someone else" in problem_of(by_header)["detail"]

    # Creating with a version other than 0 is stale as well: someone expected an entry that is not there.
    missing = client.put(
        f"{CONFIG}/planning",
        json={"provider_id": provider["id"], "model_name": "gpt-4o", "version": 3},
        headers=api.admin,
    )
    assert missing.status_code == 409 and "now at 0" in problem_of(missing)["detail"]

    assert client.get(f"{CONFIG}/tools", headers=api.viewer).json() == current
    assert set(client.get(CONFIG, headers=api.viewer).json()) == {"tools"}


def test_put_with_fallbacks_stores_them_in_order(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    main = add_provider(client, api, openai_peer, name="main")
    claude = add_provider(
        client, api, anthropic_peer, name="claude", provider_type="anthropic", api_key=ANTHROPIC_PEER_KEY
    )

    entry = put_config(
        client,
        api,
        "subagents",
        {
            "provider_id": main["id"],
            "model_name": "gpt-4o-mini",
            "fallbacks": [{"provider_id": "claude", "model_name": "claude-haiku-4-5"}],
        },
    )

    assert entry["fallbacks"] == [{"provider_id": claude["id"], "model_name": "claude-haiku-4-5"}]
    assert "1 fallback(s)" in client.get(f"{CONFIG}/summary", headers=api.viewer).json()["summary"]


# ------------------------------------------------------------------------------------------------ summary and validate


def test_summary_has_one_line_per_interaction_type(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    put_config(client, api, "reasoning", {"provider_id": provider["id"], "model_name": "gpt-4o", "temperature": 0.7})
    put_config(client, api, "tools", {"provider_id": provider["id"], "model_name": "gpt-4o-mini", "max_tokens": 100})

    response = client.get(f"{CONFIG}/summary", headers=api.viewer)

    assert response.status_code == 200 and set(response.json()) == {"summary"}
    lines = response.json()["summary"].splitlines()
    assert lines == [
        "reasoning: peer / gpt-4o (temperature 0.7)",
        "tools: peer / gpt-4o-mini (default temperature, max tokens 100)",
        "subagents: not configured",
        "planning: not configured",
        "embeddings: not configured",
    ]


def test_validate_checks_every_configured_type_against_its_provider(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    add_provider(client, api, openai_peer, name="openai")
    add_provider(client, api, anthropic_peer, name="claude", provider_type="anthropic", api_key=ANTHROPIC_PEER_KEY)
    put_config(client, api, "reasoning", {"provider_id": "openai", "model_name": "gpt-4o"})
    put_config(client, api, "tools", {"provider_id": "openai", "model_name": "local-chat"})
    put_config(client, api, "planning", {"provider_id": "claude", "model_name": "claude-sonnet-4-5"})

    healthy = client.get(f"{CONFIG}/validate", headers=api.viewer)
    assert healthy.status_code == 200
    assert healthy.json() == {
        "ok": True,
        "results": {
            "reasoning": {"ok": True, "status": "ok", "detail": "openai / gpt-4o"},
            "tools": {"ok": True, "status": "ok", "detail": "openai / local-chat"},
            "planning": {"ok": True, "status": "ok", "detail": "claude / claude-sonnet-4-5"},
        },
    }

    openai_peer.models.remove("local-chat")
    anthropic_peer.behaviour = "html"
    broken = client.get(f"{CONFIG}/validate", headers=api.viewer).json()

    assert broken["ok"] is False
    assert broken["results"]["reasoning"]["ok"] is True
    assert broken["results"]["tools"]["status"] == "model_missing"
    assert "no longer offers 'local-chat'" in broken["results"]["tools"]["detail"]
    assert broken["results"]["planning"]["status"] == "bad_response"
    assert set(broken["results"]["planning"]) == {"ok", "status", "detail"}


def test_validate_with_nothing_configured_is_ok_and_empty(client: TestClient, api: ApiContext) -> None:
    response = client.get(f"{CONFIG}/validate", headers=api.viewer)

    assert response.status_code == 200 and response.json() == {"ok": True, "results": {}}


# ------------------------------------------------------------------------------------------------ 404 and 422


def test_unknown_or_unconfigured_interaction_type_is_404(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    unknown = client.get(f"{CONFIG}/no-such-type", headers=api.viewer)
    assert unknown.status_code == 404
    assert "Unknown interaction type 'no-such-type'" in problem_of(unknown)["detail"]
    assert "reasoning" in problem_of(unknown)["detail"]  # it lists the known ones

    unknown_put = client.put(
        f"{CONFIG}/no-such-type", json={"provider_id": provider["id"], "model_name": "gpt-4o"}, headers=api.admin
    )
    assert unknown_put.status_code == 404
    assert "Unknown interaction type 'no-such-type'" in problem_of(unknown_put)["detail"]

    unconfigured = client.get(f"{CONFIG}/planning", headers=api.viewer)
    assert unconfigured.status_code == 404
    assert "'planning' is not configured" in problem_of(unconfigured)["detail"]


def test_model_must_be_in_the_catalog_and_of_the_right_kind(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    not_offered = client.put(
        f"{CONFIG}/reasoning", json={"provider_id": provider["id"], "model_name": "gpt-9"}, headers=api.admin
    )
    assert not_offered.status_code == 422
    detail = problem_of(not_offered)["detail"]
    assert "does not offer model 'gpt-9'" in detail and "gpt-4o-mini" in detail

    chat_for_embeddings = client.put(
        f"{CONFIG}/embeddings", json={"provider_id": provider["id"], "model_name": "gpt-4o"}, headers=api.admin
    )
    assert chat_for_embeddings.status_code == 422
    assert "kind 'chat'" in problem_of(chat_for_embeddings)["detail"]
    assert "takes embeddings models" in problem_of(chat_for_embeddings)["detail"]

    embeddings_for_chat = client.put(
        f"{CONFIG}/reasoning",
        json={"provider_id": provider["id"], "model_name": "text-embedding-3-small"},
        headers=api.admin,
    )
    assert embeddings_for_chat.status_code == 422

    bad_fallback = client.put(
        f"{CONFIG}/reasoning",
        json={
            "provider_id": provider["id"],
            "model_name": "gpt-4o",
            "fallbacks": [{"provider_id": provider["id"], "model_name": "gpt-9"}],
        },
        headers=api.admin,
    )
    assert bad_fallback.status_code == 422 and "'gpt-9'" in problem_of(bad_fallback)["detail"]

    assert client.get(CONFIG, headers=api.viewer).json() == {}


def test_an_empty_catalog_accepts_any_model(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> None:
    response = client.post(
        f"{API}/providers",
        json={"name": "unchecked", "provider_type": "custom", "api_base_url": openai_peer.base_url},
        headers=api.admin,
    )
    assert response.status_code == 201

    entry = put_config(client, api, "reasoning", {"provider_id": "unchecked", "model_name": "anything-goes"})

    assert entry["model_name"] == "anything-goes"


def test_unknown_disabled_or_anthropic_provider_is_422(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    unknown = client.put(f"{CONFIG}/reasoning", json={"provider_id": "ghost", "model_name": "x"}, headers=api.admin)
    assert unknown.status_code == 422 and "Provider 'ghost' does not exist" in problem_of(unknown)["detail"]

    disabled = add_provider(client, api, openai_peer, name="off")
    client.patch(f"{API}/providers/{disabled['id']}", json={"enabled": False}, headers=api.admin)
    off = client.put(f"{CONFIG}/reasoning", json={"provider_id": "off", "model_name": "gpt-4o"}, headers=api.admin)
    assert off.status_code == 422 and "is disabled" in problem_of(off)["detail"]

    add_provider(client, api, anthropic_peer, name="claude", provider_type="anthropic", api_key=ANTHROPIC_PEER_KEY)
    no_embeddings = client.put(
        f"{CONFIG}/embeddings", json={"provider_id": "claude", "model_name": "claude-haiku-4-5"}, headers=api.admin
    )
    assert no_embeddings.status_code == 422 and "no embeddings API" in problem_of(no_embeddings)["detail"]

    assert client.get(CONFIG, headers=api.viewer).json() == {}


@sqlite_only
@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"temperature": 2.5}, "temperature: Input should be less than or equal to 2"),
        ({"temperature": -0.1}, "temperature: Input should be greater than or equal to 0"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than 0"),
        ({"extra_params": {"api_key": "sk-canary-param-123"}}, "credentials and endpoints belong to the provider"),
        ({"extra_params": {"temperature": 1}}, "use the field of that name instead"),
        ({"model_name": ""}, "model_name: String should have at least 1 character"),
        ({"secret_field": "sk-canary-extra-123"}, "secret_field: Extra inputs are not permitted"),
    ],
    ids=[
        "temperature-high",
        "temperature-negative",
        "max-tokens",
        "credential-param",
        "reserved-param",
        "no-model",
        "extra",
    ],
)
def test_invalid_config_is_422_naming_the_problem(
    client: TestClient, api: ApiContext, openai_peer: OpenAIPeer, change: dict[str, Any], phrase: str
) -> None:
    provider = add_provider(client, api, openai_peer, name="peer")

    response = client.put(
        f"{CONFIG}/reasoning", json={"provider_id": provider["id"], "model_name": "gpt-4o", **change}, headers=api.admin
    )

    assert response.status_code == 422
    assert phrase in problem_of(response)["detail"]
    assert "sk-canary" not in response.text
    assert client.get(CONFIG, headers=api.viewer).json() == {}


# ------------------------------------------------------------------------------------------------ keys in odd places


@sqlite_only
@pytest.mark.parametrize(
    "extra_params",
    [{"model_kwargs": {"api_key": "sk-canary-nested-0001"}}, {"default_query": {"api-key": "sk-canary-nested-0001"}}],
    ids=["model_kwargs", "default_query"],
)
def test_credentials_nested_in_extra_params_are_refused(
    client: TestClient, api: ApiContext, provider: dict[str, Any], extra_params: dict[str, Any]
) -> None:
    response = client.put(
        f"{CONFIG}/reasoning",
        json={"provider_id": provider["id"], "model_name": "gpt-4o", "extra_params": extra_params},
        headers=api.admin,
    )

    assert response.status_code == 422
    assert "sk-canary-nested" not in response.text
