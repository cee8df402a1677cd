"""Bad input and failing providers on ``/v1``: OpenAI-shaped errors that the official SDK raises as its own classes.

Through the ``openai`` SDK against a real uvicorn where the SDK can send the request, through httpx where it
cannot (no token, a body that is not JSON). On SQLite and PostgreSQL. No provider key ever shows in an answer
or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from llmconfig.config import ConfigUpdate
from llmconfig.config.schemas import InteractionTypeCreate
from llmconfig.providers import ProviderCreate, ProviderUpdate
from tests.api.conftest import ApiContext
from tests.api.openai_gateway import Gateway, configured_gateway
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply

HELLO: Any = [{"role": "user", "content": "hello"}]
CANARIES = (OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY[:12], ANTHROPIC_PEER_KEY[:14])


@pytest.fixture
def gateway(api: ApiContext, live_server: str, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> Gateway:
    return configured_gateway(api, live_server, openai_peer, anthropic_peer)


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        text = record.getMessage()
        assert not any(canary in text for canary in CANARIES), text


def assert_no_key(error: openai.APIStatusError) -> None:
    assert not any(canary in error.response.text for canary in CANARIES), error.response.text


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# ------------------------------------------------------------------------------------------------ the caller


def test_no_token_is_401(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "reasoning", "messages": HELLO})
    assert response.status_code == 401
    assert "Bearer" in error_of(response)["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_token_is_the_sdks_authentication_error(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        gateway.sdk("llmc_not-a-token").chat.completions.create(model="reasoning", messages=HELLO)
    assert raised.value.code == "invalid_api_key"


def test_a_viewer_token_is_refused_naming_the_roles_needed(gateway: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as raised:
        gateway.sdk(gateway.viewer_token).chat.completions.create(model="reasoning", messages=HELLO)
    assert "client or admin token" in raised.value.message
    with pytest.raises(openai.PermissionDeniedError):
        gateway.sdk(gateway.viewer_token).models.list()


def test_an_admin_token_may_call(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(text="yes"))
    answer = gateway.sdk(gateway.admin_token).chat.completions.create(model="reasoning", messages=HELLO)
    assert answer.choices[0].message.content == "yes"


def test_a_token_limited_to_other_types_is_refused(gateway: Gateway) -> None:
    limited, _ = gateway.service.tokens.create(role="client", name="planner", interaction_types=["planning"])
    with pytest.raises(openai.PermissionDeniedError) as raised:
        gateway.sdk(limited).chat.completions.create(model="reasoning", messages=HELLO)
    assert "planning" in raised.value.message and "'reasoning'" in raised.value.message
    assert gateway.openai_peer.requests_to("/v1/chat/completions") == []


# ------------------------------------------------------------------------------------------------ the model


def test_an_unknown_interaction_type_is_the_sdks_not_found_error(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        gateway.sdk().chat.completions.create(model="gpt-4o", messages=HELLO)
    assert raised.value.code == "model_not_found"
    assert "reasoning" in raised.value.message  # the known types are named


def test_a_type_with_nothing_configured_is_not_found_saying_what_to_configure(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        gateway.sdk().chat.completions.create(model="tools", messages=HELLO)
    assert "llmconfig config set tools" in raised.value.message


def test_an_embeddings_type_asked_for_chat_names_the_right_endpoint(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.sdk().chat.completions.create(model="embeddings", messages=HELLO)
    assert "/v1/embeddings" in raised.value.message
    assert raised.value.param == "model"


def test_a_chat_type_asked_for_embeddings_names_the_right_endpoint(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.sdk().embeddings.create(model="reasoning", input="hello")
    assert "/v1/chat/completions" in raised.value.message


# ------------------------------------------------------------------------------------------------ the body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"messages": HELLO}, "model", id="no model"),
        pytest.param({"model": "reasoning"}, "messages", id="no messages"),
        pytest.param({"model": "reasoning", "messages": "hello"}, "messages", id="messages not a list"),
        pytest.param({"model": "reasoning", "messages": ["hello"]}, "messages[0]", id="message not an object"),
        pytest.param({"model": "reasoning", "messages": HELLO, "temperature": 7}, "temperature", id="temperature"),
        pytest.param({"model": "reasoning", "messages": HELLO, "max_tokens": "9"}, "max_tokens", id="max_tokens"),
        pytest.param({"model": "reasoning", "messages": HELLO, "stream": "yes"}, "stream", id="stream"),
        pytest.param(
            {"model": "reasoning", "messages": HELLO, "stream_options": {"include_usage": True}},
            "stream_options",
            id="stream_options without stream",
        ),
        pytest.param({"model": "reasoning", "messages": HELLO, "user": "a\nb"}, "user", id="user with a newline"),
        pytest.param({"model": "reasoning", "messages": HELLO, "user": "u" * 300}, "user", id="overlong user"),
        pytest.param({"model": "planning", "messages": HELLO, "n": 2}, "n", id="n for anthropic"),
        pytest.param(
            {"model": "planning", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            id="tool message without its call for anthropic",
        ),
    ],
)
def test_a_malformed_chat_body_is_400_naming_the_field(gateway: Gateway, body: dict[str, Any], param: str) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {gateway.token}"}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert gateway.openai_peer.requests_to("/v1/chat/completions") == []
    assert gateway.anthropic_peer.requests_to("/v1/messages") == []


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b'{"model": "reasoning", "messages": [', b"\xff\xfe"])
def test_a_body_that_is_no_json_object_is_400(gateway: Gateway, content: bytes) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {gateway.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_a_conversation_over_a_megabyte_with_any_character_reaches_the_provider(gateway: Gateway) -> None:
    # Larger than the 1 MB documents of the rest of the API, as a long context or an image as a data URL is;
    # a NUL is only text for the provider here.
    content = "long context \x00 " + "x" * 1_500_000
    gateway.openai_peer.script(ScriptedReply(text="read it"))
    answer = gateway.sdk().chat.completions.create(model="reasoning", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content == "read it"
    (sent,) = gateway.openai_peer.requests_to("/v1/chat/completions")
    assert sent.json["messages"][0]["content"] == content


def test_a_body_over_the_gateways_cap_is_413_in_openai_shape_and_reaches_no_provider(gateway: Gateway) -> None:
    cap = gateway.service.settings.gateway_max_body_bytes
    body = b'{"model": "reasoning", "messages": [{"role": "user", "content": "' + b"x" * cap + b'"}]}'
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {gateway.token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    error = error_of(response)
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    assert "LLMCONFIG_GATEWAY_MAX_BODY_BYTES" in error["message"]
    assert gateway.openai_peer.requests_to("/v1/chat/completions") == []


def test_a_malformed_embeddings_body_is_400_naming_the_field(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.sdk().embeddings.create(model="embeddings", input=[])
    assert raised.value.param == "input"


# ------------------------------------------------------------------------------------------------ providers


def _chain(gateway: Gateway, name: str, primary: str, fallback: str, model: str = "gpt-4o") -> None:
    gateway.service.types.add(InteractionTypeCreate(name=name, kind="chat"), actor="t")
    gateway.service.config.set_global(
        name,
        ConfigUpdate(
            provider_id=primary,
            model_name=model,
            fallbacks=[{"provider_id": fallback, "model_name": "claude-haiku-4-5"}],
        ),
        actor="t",
    )


@pytest.mark.parametrize("behaviour", ["error500", "ratelimit429", "html", "garbage", "reset"])
def test_an_unavailable_primary_falls_back_to_the_next_target(gateway: Gateway, behaviour: str, logged: Any) -> None:
    _chain(gateway, "triage", "local", "claude")
    gateway.openai_peer.behaviour = behaviour
    gateway.anthropic_peer.script(ScriptedReply(text="from the fallback"))
    answer = gateway.sdk().chat.completions.create(model="triage", messages=HELLO)
    assert answer.choices[0].message.content == "from the fallback"
    assert len(gateway.openai_peer.requests_to("/v1/chat/completions")) == 1


def test_an_exhausted_chain_is_502_naming_each_provider_and_status(gateway: Gateway, logged: Any) -> None:
    _chain(gateway, "triage", "local", "claude")
    gateway.openai_peer.behaviour = "error500"
    gateway.anthropic_peer.behaviour = "ratelimit429"
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.sdk().chat.completions.create(model="triage", messages=HELLO)
    assert raised.value.status_code == 502
    message = raised.value.message
    assert "provider 'local'" in message and "500" in message
    assert "provider 'claude'" in message and "429" in message
    assert_no_key(raised.value)
    assert gateway.service.usage_recorder.flush()
    [row] = [g for g in gateway.service.usage.report(group_by=["interaction_type"]).groups if g.key == "triage"]
    assert (row.calls, row.errors) == (1, 1)


def test_a_stream_whose_chain_is_exhausted_fails_before_its_first_byte(gateway: Gateway, logged: Any) -> None:
    gateway.openai_peer.behaviour = "error500"
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.sdk().chat.completions.create(model="reasoning", messages=HELLO, stream=True)
    assert raised.value.status_code == 502
    assert "provider 'local'" in raised.value.message


def test_a_provider_400_is_passed_on_and_does_not_fall_back(gateway: Gateway, logged: Any) -> None:
    _chain(gateway, "triage", "local", "claude")
    gateway.openai_peer.behaviour = "badrequest400"
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.sdk().chat.completions.create(model="triage", messages=HELLO)
    assert "provider 'local'" in raised.value.message and "temperature" in raised.value.message
    assert gateway.anthropic_peer.requests_to("/v1/messages") == []


def test_a_provider_rejecting_its_key_is_502_saying_the_token_was_fine(gateway: Gateway, logged: Any) -> None:
    gateway.service.providers.update("local", ProviderUpdate(api_key=SecretStr("sk-wrong-key-0123456789abcdef")))
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.sdk().chat.completions.create(model="reasoning", messages=HELLO)
    assert raised.value.status_code == 502
    assert raised.value.code == "provider_key_rejected"
    assert "Your token was accepted" in raised.value.message
    assert "sk-wrong" not in raised.value.response.text
    assert_no_key(raised.value)


def test_embeddings_do_not_fall_back_and_report_502(gateway: Gateway, logged: Any) -> None:
    gateway.openai_peer.behaviour = "error500"
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.sdk().embeddings.create(model="embeddings", input="hello")
    assert raised.value.status_code == 502
    assert "provider 'local'" in raised.value.message and "500" in raised.value.message


def test_an_oversized_answer_is_cut_and_reported_as_502(gateway: Gateway, logged: Any) -> None:
    cap = gateway.service.settings.model_max_response_bytes
    gateway.openai_peer.behaviour = "huge"
    gateway.openai_peer.huge_bytes = cap + 1024 * 1024
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.sdk().chat.completions.create(model="reasoning", messages=HELLO)
    assert raised.value.status_code == 502
    assert "larger than 32 MB" in raised.value.message and "LLMCONFIG_MODEL_MAX_RESPONSE_BYTES" in raised.value.message


def test_no_error_answer_carries_a_provider_key(gateway: Gateway, logged: Any) -> None:
    gateway.service.providers.add(
        ProviderCreate(name="other", provider_type="custom", api_base_url="http://127.0.0.1:9/v1"), validate=False
    )
    gateway.openai_peer.behaviour = "badrequest400"
    for model, messages in (("reasoning", HELLO), ("planning", [{"role": "bogus"}]), ("nope", HELLO)):
        with pytest.raises(openai.APIStatusError) as raised:
            gateway.sdk().chat.completions.create(model=model, messages=messages)
        assert_no_key(raised.value)


def test_a_revoked_token_is_refused_at_once_although_checked_tokens_are_remembered(
    migrated_database_url: str, make_settings: Any
) -> None:
    from fastapi.testclient import TestClient

    from llmconfig import LLMConfigService
    from llmconfig.api import create_app

    service = LLMConfigService(make_settings(database_url=migrated_database_url, cache_ttl=30))
    try:
        token, info = service.tokens.create(role="client", name="short-lived")
        with TestClient(create_app(service.settings, service=service)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/v1/models", headers=headers).status_code == 200
            service.tokens.revoke(info.id)
            refused = client.get("/v1/models", headers=headers)
            assert refused.status_code == 401
            assert error_of(refused)["code"] == "invalid_api_key"
    finally:
        service.close()


def test_an_anthropic_error_event_before_any_output_moves_a_stream_on(gateway: Gateway, logged: Any) -> None:
    gateway.service.types.add(InteractionTypeCreate(name="triage", kind="chat"), actor="t")
    gateway.service.config.set_global(
        "triage",
        ConfigUpdate(
            provider_id="claude",
            model_name="claude-haiku-4-5",
            fallbacks=[{"provider_id": "local", "model_name": "gpt-4o"}],
        ),
        actor="t",
    )
    gateway.anthropic_peer.stream_error_at = 0
    gateway.openai_peer.script(ScriptedReply(text="from the fallback"))
    stream = gateway.sdk().chat.completions.create(model="triage", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "from the fallback"
    assert len(gateway.anthropic_peer.requests_to("/v1/messages")) == 1


def test_an_anthropic_error_event_after_output_ends_the_stream_with_an_error(gateway: Gateway, logged: Any) -> None:
    gateway.anthropic_peer.stream_error_at = 4  # after message_start, the text block's start, a ping and one delta
    gateway.anthropic_peer.script(ScriptedReply(text="one two three four"))
    stream = gateway.sdk().chat.completions.create(model="planning", messages=HELLO, stream=True)
    received: list[str] = []

    def read_all() -> None:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")

    with pytest.raises(openai.APIError) as raised:
        read_all()
    assert "".join(received) == "one "
    assert "provider 'claude'" in raised.value.message and "Overloaded" in raised.value.message
    assert gateway.service.usage_recorder.flush()
    [row] = [g for g in gateway.service.usage.report(group_by=["interaction_type"]).groups if g.key == "planning"]
    assert (row.calls, row.errors) == (1, 1)


def test_a_spent_budget_is_the_sdks_insufficient_quota_or_its_on_exceed_model(gateway: Gateway) -> None:
    from llmconfig.usage.budgets import BudgetUpdate

    service = gateway.service
    service.budgets.set("type:reasoning", BudgetUpdate(period="day", limit_tokens=10), actor="t")
    sdk = gateway.sdk()
    for _ in range(10):
        sdk.chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "hi"}])
        assert service.flush_usage()
        service.services.spend.read()
        if service.services.spend.spent("type:reasoning"):
            break
    sent = len(gateway.openai_peer.requests_to("/v1/chat/completions"))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "insufficient_quota" and "daily budget of type:reasoning is spent" in str(caught.value)
    assert len(gateway.openai_peer.requests_to("/v1/chat/completions")) == sent

    service.budgets.set(
        "type:reasoning",
        BudgetUpdate(period="day", limit_tokens=10, on_exceed={"provider_id": "local", "model_name": "gpt-4o-mini"}),
        actor="t",
    )
    answer = sdk.chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from openai-peer"
    assert gateway.openai_peer.requests_to("/v1/chat/completions")[-1].json["model"] == "gpt-4o-mini"
