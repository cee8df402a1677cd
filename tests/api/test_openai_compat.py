"""The OpenAI-compatible endpoints through the official ``openai`` SDK, against a real uvicorn and the peers.

Every test runs on SQLite and on PostgreSQL (the ``service`` fixture). The providers are the loopback peers of
tests/peers, speaking the real OpenAI and Anthropic wire formats; the SDK is pointed at the server's ``/v1`` with
a client token as its API key.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from llmconfig.config import ConfigUpdate, GroupMembershipUpdate
from llmconfig.config.schemas import InteractionTypeCreate, VariantUpdate
from llmconfig.providers import ProviderCreate
from llmconfig.providers.schemas import ProviderKeyCreate
from tests.api.conftest import ApiContext
from tests.api.openai_gateway import Gateway, configured_gateway
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply, ToolCall

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANSWER_SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def gateway(api: ApiContext, live_server: str, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> Gateway:
    return configured_gateway(api, live_server, openai_peer, anthropic_peer)


def chat_requests(peer: OpenAIPeer | AnthropicPeer, path: str) -> list[Any]:
    return [request.json for request in peer.requests_to(path, "POST")]


# ------------------------------------------------------------------------------------------------ models


def test_models_lists_the_interaction_types(gateway: Gateway) -> None:
    models = gateway.sdk().models.list()
    ids = [model.id for model in models.data]
    assert ids[:5] == ["reasoning", "tools", "subagents", "planning", "embeddings"]
    assert {model.owned_by for model in models.data} == {"llmconfig"}
    assert {model.object for model in models.data} == {"model"}


def test_a_token_limited_to_some_types_lists_only_those(gateway: Gateway) -> None:
    limited, _ = gateway.service.tokens.create(role="client", name="limited", interaction_types=["planning", "tools"])
    ids = [model.id for model in gateway.sdk(limited).models.list().data]
    assert ids == ["tools", "planning"]


# ------------------------------------------------------------------------------------------------ OpenAI-compatible


def test_chat_is_answered_by_the_configured_openai_compatible_provider(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(text="four"))
    answer = gateway.sdk().chat.completions.create(
        model="reasoning", messages=[{"role": "user", "content": "two plus two"}]
    )
    assert answer.choices[0].message.content == "four"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == 1
    sent = chat_requests(gateway.openai_peer, "/v1/chat/completions")[-1]
    # The configured model and parameters fill what the request leaves out.
    assert sent["model"] == "gpt-4o"
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 77
    # The peer checked the provider's key; the client's token never reaches the provider.
    assert gateway.openai_peer.last_request.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"


def test_request_parameters_win_over_configured_ones(gateway: Gateway) -> None:
    gateway.sdk().chat.completions.create(
        model="reasoning", messages=[{"role": "user", "content": "hi"}], temperature=1.5, max_tokens=5, top_p=0.5
    )
    sent = chat_requests(gateway.openai_peer, "/v1/chat/completions")[-1]
    assert (sent["temperature"], sent["max_tokens"], sent["top_p"]) == (1.5, 5, 0.5)


def test_the_user_field_applies_that_users_override(gateway: Gateway) -> None:
    gateway.service.config.set_override(
        "alice", "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini", temperature=0.9), actor="t"
    )
    gateway.sdk().chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "hi"}], user="alice")
    gateway.sdk().chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "hi"}], user="bob")
    alice, bob = chat_requests(gateway.openai_peer, "/v1/chat/completions")[-2:]
    assert (alice["model"], alice["temperature"]) == ("gpt-4o-mini", 0.9)
    assert (bob["model"], bob["temperature"]) == ("gpt-4o", 0.3)
    assert "user" not in alice  # it picked the configuration; it is not the provider's business


def test_the_user_field_selects_the_users_group_and_variant_as_the_library_does(gateway: Gateway) -> None:
    service = gateway.service
    service.config.set_group_entry(
        "team-a",
        "reasoning",
        ConfigUpdate(
            provider_id="local",
            model_name="gpt-4o",
            weight=50,
            variants=[VariantUpdate(name="mini", provider_id="local", model_name="gpt-4o-mini", weight=50)],
        ),
        actor="t",
    )
    users = [f"member-{n}" for n in range(16)]
    for user in users:
        service.groups.set_membership(user, GroupMembershipUpdate(groups=["team-a"]), actor="t")
    library = {user: service.get_llm("reasoning", user_id=user).model_name for user in users}
    assert set(library.values()) == {"gpt-4o", "gpt-4o-mini"}  # both variants have members
    sdk = gateway.sdk()
    for _ in range(2):  # the same variant every time
        for user in users:
            sdk.chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "hi"}], user=user)
    sent = chat_requests(gateway.openai_peer, "/v1/chat/completions")[-2 * len(users) :]
    assert [request["model"] for request in sent] == [library[user] for user in users] * 2
    assert all("temperature" not in request for request in sent)  # the group entry sets none; not the global 0.3
    assert service.usage_recorder.flush()
    calls = {group.key: group.calls for group in service.usage.report(group_by=["variant"]).groups}
    minis = sum(model == "gpt-4o-mini" for model in library.values())
    assert calls == {"main": 2 * (len(users) - minis), "mini": 2 * minis}


SECOND_OPENAI_KEY = "sk-canary-gateway-second-7d21"
SECOND_ANTHROPIC_KEY = "sk-ant-canary-gateway-second-5b93"


@pytest.mark.parametrize("stream", [False, True])
def test_requests_take_the_providers_keys_in_turn_and_a_rate_limited_key_rests(gateway: Gateway, stream: bool) -> None:
    service, sdk = gateway.service, gateway.sdk()
    peers = {"reasoning": (gateway.openai_peer, OPENAI_PEER_KEY, SECOND_OPENAI_KEY, "/v1/chat/completions")}
    peers["planning"] = (gateway.anthropic_peer, ANTHROPIC_PEER_KEY, SECOND_ANTHROPIC_KEY, "/v1/messages")
    for name, (peer, _, second, _) in zip(("local", "claude"), peers.values(), strict=True):
        peer.accepted_keys.add(second)
        service.providers.keys.add(name, ProviderKeyCreate(api_key=SecretStr(second)), actor="t")

    def ask(model: str) -> str:
        messages: Any = [{"role": "user", "content": "hi"}]
        if stream:
            chunks = sdk.chat.completions.create(model=model, messages=messages, stream=True)
            return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        return sdk.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""

    for model, (peer, first, second, path) in peers.items():
        for _ in range(4):
            assert ask(model).startswith("Hello from")
        assert peer.keys_sent(path) == [first, second, first, second]
        # A 429 to the key in turn: the same request goes at once with the other key, which then serves alone.
        peer.answer_key(first, 429, retry_after="30")
        for _ in range(3):
            assert ask(model).startswith("Hello from")
        assert peer.keys_sent(path)[4:] == [first, second, second, second]
        assert [r.status for r in peer.requests_to(path)][4:] == [429, 200, 200, 200]
    assert service.usage_recorder.flush()
    hints = {group.key: group.calls for group in service.usage.report(group_by=["key"]).groups}
    assert hints == {
        f"local …{OPENAI_PEER_KEY[-4:]}": 2,
        f"local …{SECOND_OPENAI_KEY[-4:]}": 5,
        f"claude …{ANTHROPIC_PEER_KEY[-4:]}": 2,
        f"claude …{SECOND_ANTHROPIC_KEY[-4:]}": 5,
    }


def test_stream_passes_the_chunks_through_and_records_usage(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(text="one two three"))
    stream = gateway.sdk().chat.completions.create(
        model="reasoning", messages=[{"role": "user", "content": "count"}], stream=True
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "one two three"
    # Not asked for: no usage chunk reaches the client, although the gateway asked the provider for one.
    assert all(chunk.choices for chunk in chunks)
    assert chat_requests(gateway.openai_peer, "/v1/chat/completions")[-1]["stream_options"] == {"include_usage": True}
    [row] = [g for g in gateway.usage_rows() if g.keys[0] == "reasoning"]
    assert (row.calls, row.errors, row.completion_tokens) == (1, 0, 3)


def test_stream_with_include_usage_ends_with_the_usage_chunk(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(text="one two"))
    chunks = list(
        gateway.sdk().chat.completions.create(
            model="reasoning",
            messages=[{"role": "user", "content": "count to two"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_tools_and_tool_choice_reach_an_openai_compatible_provider(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    answer = gateway.sdk().chat.completions.create(
        model="reasoning",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    [call] = answer.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    sent = chat_requests(gateway.openai_peer, "/v1/chat/completions")[-1]
    assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == "required"


def test_embeddings_are_answered_by_the_configured_provider(gateway: Gateway) -> None:
    result = gateway.sdk().embeddings.create(model="embeddings", input=["hello world", "bye"])
    assert [item.embedding for item in result.data] == [
        pytest.approx(gateway.openai_peer.embedding_for("hello world")),
        pytest.approx(gateway.openai_peer.embedding_for("bye")),
    ]
    assert chat_requests(gateway.openai_peer, "/v1/embeddings")[-1]["model"] == "text-embedding-3-small"
    [row] = [g for g in gateway.usage_rows() if g.keys[0] == "embeddings"]
    assert (row.calls, row.prompt_tokens) == (1, 3)


# ------------------------------------------------------------------------------------------------ Anthropic


def test_chat_with_an_anthropic_provider_is_translated_both_ways(gateway: Gateway) -> None:
    gateway.anthropic_peer.script(ScriptedReply(text="Bonjour"))
    answer = gateway.sdk().chat.completions.create(
        model="planning",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Say hello"},
        ],
        stop=["END"],
        temperature=1.8,
    )
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == "Bonjour"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (5, 1, 6)
    sent = chat_requests(gateway.anthropic_peer, "/v1/messages")[-1]
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["system"] == [{"type": "text", "text": "Answer in French."}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert sent["max_tokens"] == 300  # configured
    assert sent["temperature"] == 1.0  # the request's 1.8, clamped to Anthropic's maximum
    assert sent["stop_sequences"] == ["END"]
    assert gateway.anthropic_peer.last_request.headers["x-api-key"] == ANTHROPIC_PEER_KEY


def test_anthropic_tool_calls_and_results_round_trip(gateway: Gateway) -> None:
    gateway.anthropic_peer.script(
        ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="toolu_1")]),
        ScriptedReply(text="It is cold"),
    )
    sdk = gateway.sdk()
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = sdk.chat.completions.create(
        model="planning",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_1",
        "get_weather",
        {"city": "Oslo"},
    )
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_1", "content": "-5 C"},
    ]
    second = sdk.chat.completions.create(model="planning", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is cold"
    first_sent, second_sent = chat_requests(gateway.anthropic_peer, "/v1/messages")[-2:]
    assert first_sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert first_sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert second_sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "-5 C"}]}
            ],
        },
    ]


def test_anthropic_stream_is_translated_into_chunks_with_usage(gateway: Gateway) -> None:
    gateway.anthropic_peer.script(ScriptedReply(text="a b c"))
    chunks = list(
        gateway.sdk().chat.completions.create(
            model="planning",
            messages=[{"role": "user", "content": "three letters"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "a b c"
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    [row] = [g for g in gateway.usage_rows() if g.keys[0] == "planning"]
    assert (row.calls, row.errors, row.prompt_tokens, row.completion_tokens) == (1, 0, 2, 3)


def test_anthropic_stream_of_a_tool_call_carries_the_arguments_in_pieces(gateway: Gateway) -> None:
    gateway.anthropic_peer.script(ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Rome"}, id="toolu_9")]))
    chunks = list(
        gateway.sdk().chat.completions.create(
            model="planning", messages=[{"role": "user", "content": "Rome?"}], tools=[WEATHER_TOOL], stream=True
        )
    )
    deltas = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert deltas[0].id == "toolu_9" and deltas[0].function is not None and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert json.loads(arguments) == {"city": "Rome"}
    assert len(deltas) > 2  # the arguments came in several pieces, as they were streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_response_format_json_schema_with_anthropic_becomes_the_message_content(gateway: Gateway) -> None:
    gateway.anthropic_peer.script(ScriptedReply(tool_calls=[ToolCall("answer", {"city": "Lima"})]))
    answer = gateway.sdk().chat.completions.create(
        model="planning", messages=[{"role": "user", "content": "capital of Peru?"}], response_format=ANSWER_SCHEMA
    )
    assert json.loads(answer.choices[0].message.content or "") == {"city": "Lima"}
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"
    sent = chat_requests(gateway.anthropic_peer, "/v1/messages")[-1]
    assert sent["tool_choice"] == {"type": "tool", "name": "answer"}
    assert sent["tools"][0]["input_schema"] == ANSWER_SCHEMA["json_schema"]["schema"]


def test_response_format_json_schema_reaches_an_openai_compatible_provider_as_sent(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(text='{"city": "Lima"}'))
    answer = gateway.sdk().chat.completions.create(
        model="reasoning", messages=[{"role": "user", "content": "capital of Peru?"}], response_format=ANSWER_SCHEMA
    )
    assert json.loads(answer.choices[0].message.content or "") == {"city": "Lima"}
    assert chat_requests(gateway.openai_peer, "/v1/chat/completions")[-1]["response_format"] == ANSWER_SCHEMA


# ------------------------------------------------------------------------------------------------ fallbacks and usage


def test_a_fallback_chain_whose_first_target_is_a_closed_port_answers_from_the_next(gateway: Gateway) -> None:
    service = gateway.service
    service.providers.add(
        ProviderCreate(
            name="dead", provider_type="custom", api_base_url=f"http://127.0.0.1:{free_tcp_port()}/v1", api_key=None
        ),
        validate=False,
    )
    service.types.add(InteractionTypeCreate(name="triage", kind="chat"), actor="t")
    service.config.set_global(
        "triage",
        ConfigUpdate(
            provider_id="dead",
            model_name="gpt-4o",
            fallbacks=[{"provider_id": "claude", "model_name": "claude-haiku-4-5"}],
        ),
        actor="t",
    )
    gateway.anthropic_peer.script(ScriptedReply(text="from claude"), ScriptedReply(text="streamed from claude"))
    sdk = gateway.sdk()
    answer = sdk.chat.completions.create(model="triage", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "from claude"
    streamed = sdk.chat.completions.create(model="triage", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "streamed from claude"
    rows = [g for g in gateway.usage_rows() if g.keys[0] == "triage"]
    assert [(g.keys[1], g.keys[2], g.calls, g.errors) for g in rows] == [("claude", "claude-haiku-4-5", 2, 0)]


def test_usage_rows_record_the_calls_with_tokens_and_user(gateway: Gateway) -> None:
    gateway.openai_peer.script(ScriptedReply(text="one two three four"))
    gateway.sdk().chat.completions.create(
        model="reasoning", messages=[{"role": "user", "content": "five words of prompt here"}], user="carol"
    )
    assert gateway.service.usage_recorder.flush()
    report = gateway.service.usage.report(group_by=["user", "interaction_type", "provider", "model"])
    [row] = report.groups
    assert row.keys == ["carol", "reasoning", "local", "gpt-4o"]
    assert (row.calls, row.errors, row.prompt_tokens, row.completion_tokens) == (1, 0, 5, 4)


def test_a_client_that_leaves_mid_stream_stops_the_providers_stream(gateway: Gateway) -> None:
    gateway.openai_peer.stream_delay = 0.2  # 30 words: about 6 s to the end
    gateway.openai_peer.script(ScriptedReply(text=" ".join(["word"] * 30)))
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "reasoning", "messages": [{"role": "user", "content": "talk"}], "stream": True},
        headers={"Authorization": f"Bearer {gateway.token}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        next(response.iter_bytes())
    # The call is recorded as cut short as soon as the gateway notices, not when the provider would have finished.
    while time.monotonic() - started < 4:
        rows = [g for g in gateway.usage_rows() if g.keys[0] == "reasoning"]
        if rows:
            break
        time.sleep(0.1)
    assert [(row.calls, row.errors) for row in rows] == [(1, 1)]
    assert time.monotonic() - started < 4


def test_unknown_paths_and_methods_under_v1_answer_in_openai_shape(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.token}"}
    missing = httpx.post(f"{gateway.url}/v1/completions", json={}, headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    wrong = httpx.get(f"{gateway.url}/v1/chat/completions", headers=headers)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
