"""/users/{id}/config and /interaction-types over HTTP, and ``get_llm`` following a user's override.

Runs on SQLite and PostgreSQL; input rejected before the database is touched is checked on SQLite only.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

TYPES = f"{API}/interaction-types"
BUILTIN_TYPES = ["reasoning", "tools", "subagents", "planning", "embeddings"]
sqlite_only = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def provider(client: TestClient, api: ApiContext, openai_peer: OpenAIPeer) -> dict[str, Any]:
    """A validated provider on the OpenAI peer (so its catalog is known)."""
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


def put(client: TestClient, api: ApiContext, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.put(url, json=body, headers=api.admin)
    assert response.status_code == 200, response.text
    entry: dict[str, Any] = response.json()
    return entry


def user_config(client: TestClient, api: ApiContext, user_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/users/{user_id}/config", headers=api.viewer)
    assert response.status_code == 200, response.text
    effective: dict[str, Any] = response.json()
    return effective


def chat_request(api: ApiContext, peer: OpenAIPeer, interaction_type: str, user_id: str | None = None) -> Any:
    """Ask ``get_llm`` for a model, call it, and return the JSON the peer received (model, temperature …)."""
    api.service.get_llm(interaction_type, user_id=user_id).invoke("Hello")
    return peer.requests_to("/v1/chat/completions")[-1].json


def embeddings_model(api: ApiContext, peer: OpenAIPeer, interaction_type: str) -> str:
    """Ask ``get_embeddings`` for a model, call it, and return the model name the peer received."""
    api.service.get_embeddings(interaction_type=interaction_type).embed_query("Hello")
    model: str = peer.requests_to("/v1/embeddings")[-1].json["model"]
    return model


def add_type(client: TestClient, api: ApiContext, name: str, kind: str = "chat") -> Any:
    return client.post(TYPES, json={"name": name, "kind": kind, "description": f"{name} work"}, headers=api.admin)


# ------------------------------------------------------------------------------------------------ user overrides


def test_user_config_shows_the_source_of_each_entry(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    put(client, api, f"{API}/config/reasoning", {"provider_id": provider["id"], "model_name": "gpt-4o"})
    override = put(
        client,
        api,
        f"{API}/users/u-42/config/reasoning",
        {"provider_id": provider["id"], "model_name": "gpt-4o-mini", "temperature": 0.2},
    )
    put(client, api, f"{API}/config/tools", {"provider_id": provider["id"], "model_name": "local-chat"})
    assert override["version"] == 1 and override["updated_by"] == "token:test-admin"

    effective = user_config(client, api, "u-42")
    assert set(effective) == {"reasoning", "tools"}  # unconfigured types are absent without OPENAI_API_KEY
    assert (effective["reasoning"]["source"], effective["reasoning"]["model_name"]) == ("user", "gpt-4o-mini")
    assert effective["reasoning"]["temperature"] == 0.2
    assert (effective["tools"]["source"], effective["tools"]["model_name"]) == ("global", "local-chat")

    other_user = user_config(client, api, "someone-else")
    assert (other_user["reasoning"]["source"], other_user["reasoning"]["model_name"]) == ("global", "gpt-4o")

    env_service = LLMConfigService(
        api.service.settings.model_copy(update={"openai_api_key": SecretStr("sk-env-fallback-key-000000")})
    )
    try:
        with TestClient(create_app(env_service.settings, service=env_service)) as env_client:
            with_env = user_config(env_client, api, "u-42")
    finally:
        env_service.close()
    assert set(with_env) == set(BUILTIN_TYPES)
    assert with_env["reasoning"]["source"] == "user" and with_env["tools"]["source"] == "global"
    planning = with_env["planning"]
    assert (planning["source"], planning["provider_id"], planning["model_name"]) == ("env", None, "gpt-4o")
    assert planning["temperature"] == 0.2 and planning["version"] is None
    assert with_env["embeddings"]["model_name"] == "text-embedding-3-small"
    assert "sk-env-fallback-key" not in str(with_env)


def test_put_and_delete_override_and_get_llm_follows_it(
    client: TestClient, api: ApiContext, provider: dict[str, Any], openai_peer: OpenAIPeer
) -> None:
    put(client, api, f"{API}/config/reasoning", {"provider_id": provider["id"], "model_name": "gpt-4o"})
    override_url = f"{API}/users/u-7/config/reasoning"
    assert chat_request(api, openai_peer, "reasoning", "u-7")["model"] == "gpt-4o"

    put(client, api, override_url, {"provider_id": provider["id"], "model_name": "local-chat", "temperature": 1.1})
    sent = chat_request(api, openai_peer, "reasoning", "u-7")
    assert sent["model"] == "local-chat" and sent["temperature"] == 1.1
    assert chat_request(api, openai_peer, "reasoning")["model"] == "gpt-4o"
    assert chat_request(api, openai_peer, "reasoning", "u-8")["model"] == "gpt-4o"

    changed = put(client, api, override_url, {"provider_id": provider["id"], "model_name": "gpt-4o-mini", "version": 1})
    assert changed["version"] == 2 and changed["temperature"] == 1.1
    assert chat_request(api, openai_peer, "reasoning", "u-7")["model"] == "gpt-4o-mini"

    stale = client.put(
        override_url, json={"provider_id": provider["id"], "model_name": "gpt-4o", "version": 1}, headers=api.admin
    )
    assert stale.status_code == 409 and "override of 'reasoning' for 'u-7'" in problem_of(stale)["detail"]

    deleted = client.delete(override_url, headers=api.admin)
    assert deleted.status_code == 204
    assert user_config(client, api, "u-7")["reasoning"]["source"] == "global"
    assert chat_request(api, openai_peer, "reasoning", "u-7")["model"] == "gpt-4o"

    again = client.delete(override_url, headers=api.admin)
    assert again.status_code == 404 and "has no override for 'reasoning'" in problem_of(again)["detail"]


def test_override_errors_are_problems(client: TestClient, api: ApiContext, provider: dict[str, Any]) -> None:
    unknown_type = client.put(
        f"{API}/users/u-1/config/nope", json={"provider_id": provider["id"], "model_name": "gpt-4o"}, headers=api.admin
    )
    assert unknown_type.status_code == 404 and "Unknown interaction type 'nope'" in problem_of(unknown_type)["detail"]

    wrong_kind = client.put(
        f"{API}/users/u-1/config/embeddings",
        json={"provider_id": provider["id"], "model_name": "gpt-4o"},
        headers=api.admin,
    )
    assert wrong_kind.status_code == 422 and "takes embeddings models" in problem_of(wrong_kind)["detail"]

    viewer = client.put(
        f"{API}/users/u-1/config/reasoning",
        json={"provider_id": provider["id"], "model_name": "gpt-4o"},
        headers=api.viewer,
    )
    assert viewer.status_code == 403 and "admin token" in problem_of(viewer)["detail"]

    assert user_config(client, api, "u-1") == {}


# ------------------------------------------------------------------------------------------------ interaction types


def test_interaction_types_lists_the_builtins_first(client: TestClient, api: ApiContext) -> None:
    assert add_type(client, api, "aaa-first-alphabetically").status_code == 201

    response = client.get(TYPES, headers=api.viewer)

    assert response.status_code == 200
    listed = response.json()
    assert [t["name"] for t in listed] == [*BUILTIN_TYPES, "aaa-first-alphabetically"]
    assert all(t["builtin"] for t in listed[:5]) and not listed[5]["builtin"]
    assert {t["name"]: t["kind"] for t in listed[:5]}["embeddings"] == "embeddings"


def test_custom_interaction_types_can_be_added_configured_and_deleted(
    client: TestClient, api: ApiContext, provider: dict[str, Any], openai_peer: OpenAIPeer
) -> None:
    chat = add_type(client, api, "summaries", "chat")
    assert chat.status_code == 201, chat.text
    assert chat.json() == {
        "name": "summaries",
        "kind": "chat",
        "description": "summaries work",
        "builtin": False,
        "version": 1,
    }
    vectors = add_type(client, api, "search_vectors", "embeddings")
    assert vectors.status_code == 201 and vectors.json()["kind"] == "embeddings"

    summaries = put(client, api, f"{API}/config/summaries", {"provider_id": provider["id"], "model_name": "gpt-4o"})
    assert summaries["kind"] == "chat"
    assert chat_request(api, openai_peer, "summaries")["model"] == "gpt-4o"
    chat_model_for_vectors = client.put(
        f"{API}/config/search_vectors", json={"provider_id": provider["id"], "model_name": "gpt-4o"}, headers=api.admin
    )
    assert chat_model_for_vectors.status_code == 422
    put(
        client,
        api,
        f"{API}/config/search_vectors",
        {"provider_id": provider["id"], "model_name": "text-embedding-3-small"},
    )
    assert embeddings_model(api, openai_peer, "search_vectors") == "text-embedding-3-small"

    configured = client.delete(f"{TYPES}/summaries", headers=api.admin)
    assert configured.status_code == 409
    assert "'summaries' is still configured" in problem_of(configured)["detail"]

    unconfigured = add_type(client, api, "scratch")
    assert unconfigured.status_code == 201
    deleted = client.delete(f"{TYPES}/scratch", headers=api.admin)
    assert deleted.status_code == 204
    assert "scratch" not in {t["name"] for t in client.get(TYPES, headers=api.viewer).json()}
    gone = client.delete(f"{TYPES}/scratch", headers=api.admin)
    assert gone.status_code == 404 and "Unknown interaction type 'scratch'" in problem_of(gone)["detail"]


def test_a_type_with_only_user_overrides_is_still_configured(
    client: TestClient, api: ApiContext, provider: dict[str, Any]
) -> None:
    assert add_type(client, api, "drafting").status_code == 201
    put(client, api, f"{API}/users/u-1/config/drafting", {"provider_id": provider["id"], "model_name": "gpt-4o"})

    response = client.delete(f"{TYPES}/drafting", headers=api.admin)

    assert response.status_code == 409
    assert "overrides for 1 user(s)" in problem_of(response)["detail"]


def test_builtin_and_duplicate_interaction_types_are_409(client: TestClient, api: ApiContext) -> None:
    builtin = client.delete(f"{TYPES}/reasoning", headers=api.admin)
    assert builtin.status_code == 409 and "built-in interaction type" in problem_of(builtin)["detail"]

    assert add_type(client, api, "summaries").status_code == 201
    duplicate = add_type(client, api, "summaries", "embeddings")
    assert duplicate.status_code == 409 and "'summaries' already exists" in problem_of(duplicate)["detail"]
    builtin_again = add_type(client, api, "tools")
    assert builtin_again.status_code == 409

    listed = {t["name"]: t["kind"] for t in client.get(TYPES, headers=api.viewer).json()}
    assert listed["summaries"] == "chat" and listed["tools"] == "chat" and "reasoning" in listed


@sqlite_only
@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"name": "Bad Name", "kind": "chat"}, "name: String should match pattern"),
        ({"name": "9lives", "kind": "chat"}, "name: String should match pattern"),
        ({"name": "x" * 65, "kind": "chat"}, "name: String should match pattern"),
        ({"name": "ok", "kind": "images"}, "kind: Input should be 'chat' or 'embeddings'"),
        ({"name": "ok"}, "kind: Field required"),
    ],
    ids=["spaces", "digit-first", "too-long", "bad-kind", "no-kind"],
)
def test_invalid_interaction_type_is_422(
    client: TestClient, api: ApiContext, body: dict[str, Any], phrase: str
) -> None:
    response = client.post(TYPES, json=body, headers=api.admin)

    assert response.status_code == 422
    assert phrase in problem_of(response)["detail"]
    assert len(client.get(TYPES, headers=api.viewer).json()) == len(BUILTIN_TYPES)
