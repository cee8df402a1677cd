"""The translation between OpenAI chat completions and Anthropic's Messages API, function by function."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmconfig.gateway.anthropic import (
    DEFAULT_MAX_TOKENS,
    Configured,
    finish_reason,
    to_chat_completion,
    to_messages_request,
)
from llmconfig.gateway.anthropic_stream import StreamError, StreamTranslator
from llmconfig.gateway.errors import GatewayError

TOOL: Any = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {}}},
}


def translate(request: dict[str, Any], **configured: Any) -> dict[str, Any]:
    body = to_messages_request({"model": "t", **request}, model="claude-x", configured=Configured(**configured)).body
    return body


def refused(request: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as raised:
        translate(request)
    assert raised.value.status == 400
    return raised.value


# ------------------------------------------------------------------------------------------------ requests


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    body = translate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert body["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use French."}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["model"] == "claude-x"


def test_consecutive_turns_of_one_role_are_merged() -> None:
    body = translate({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_assistant_tool_calls_and_tool_results_become_blocks() -> None:
    body = translate(
        {
            "messages": [
                {"role": "user", "content": "look up x and y"},
                {
                    "role": "assistant",
                    "content": "Looking.",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}},
                        {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "y"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "X"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "Y"}]},
            ]
        }
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "c1", "name": "lookup", "input": {"q": "x"}},
            {"type": "tool_use", "id": "c2", "name": "lookup", "input": {"q": "y"}},
        ],
    }
    # Both results in the one user turn that follows, as Anthropic requires.
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "X"}]},
            {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "Y"}]},
        ],
    }


def test_images_as_data_urls_and_http_urls() -> None:
    body = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        }
    )
    blocks = body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


def test_tools_become_input_schemas() -> None:
    body = translate({"messages": [{"role": "user", "content": "x"}], "tools": [TOOL]})
    assert body["tools"] == [
        {"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {}}}
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "lookup"}}, None, {"type": "tool", "name": "lookup"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any]) -> None:
    request: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": [TOOL]}
    if choice is not None:
        request["tool_choice"] = choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    assert translate(request)["tool_choice"] == expected


def test_max_tokens_comes_from_the_request_then_the_configuration_then_a_default() -> None:
    hello = [{"role": "user", "content": "x"}]
    assert translate({"messages": hello, "max_tokens": 10}, max_tokens=50)["max_tokens"] == 10
    assert translate({"messages": hello, "max_completion_tokens": 12}, max_tokens=50)["max_tokens"] == 12
    assert translate({"messages": hello}, max_tokens=50)["max_tokens"] == 50
    assert translate({"messages": hello})["max_tokens"] == DEFAULT_MAX_TOKENS


def test_temperature_is_clamped_to_one_and_the_configured_one_fills_in() -> None:
    hello = [{"role": "user", "content": "x"}]
    assert translate({"messages": hello, "temperature": 1.7})["temperature"] == 1.0
    assert translate({"messages": hello}, temperature=0.2)["temperature"] == 0.2
    assert translate({"messages": hello, "temperature": 0}, temperature=0.9)["temperature"] == 0
    assert "temperature" not in translate({"messages": hello})


def test_stop_and_configured_extra_params() -> None:
    body = translate({"messages": [{"role": "user", "content": "x"}], "stop": "END"}, extra_params={"top_k": 5})
    assert body["stop_sequences"] == ["END"]
    assert body["top_k"] == 5


def test_openai_only_fields_are_dropped_and_anthropic_ones_sent_on() -> None:
    body = translate(
        {
            "messages": [{"role": "user", "content": "x"}],
            "seed": 3,
            "presence_penalty": 0.5,
            "user": "u1",
            "top_k": 7,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        }
    )
    assert "seed" not in body and "presence_penalty" not in body and "user" not in body
    assert body["top_k"] == 7 and body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_response_format_json_schema_forces_one_tool() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    translated = to_messages_request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "result", "schema": schema}},
        },
        model="claude-x",
        configured=Configured(),
    )
    assert translated.response_tool == "result"
    assert translated.body["tools"][0]["name"] == "result"
    assert translated.body["tools"][0]["input_schema"] == schema
    assert translated.body["tool_choice"] == {"type": "tool", "name": "result"}


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 3}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "code"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [TOOL],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
    ],
)
def test_what_cannot_be_translated_is_refused_naming_the_field(request_body: dict[str, Any], param: str) -> None:
    assert refused(request_body).param == param


# ------------------------------------------------------------------------------------------------ answers


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
    }


def test_a_text_answer() -> None:
    completion = to_chat_completion(
        message([{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]), created=42
    )
    assert completion["id"] == "chatcmpl-msg_1"
    assert completion["created"] == 42
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "Hello", "refusal": None}
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22}


def test_tool_use_blocks_become_tool_calls_with_json_string_arguments() -> None:
    completion = to_chat_completion(
        message([{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}], "tool_use"), created=1
    )
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and call["type"] == "function"
    assert call["function"]["name"] == "lookup" and json.loads(call["function"]["arguments"]) == {"q": "x"}


def test_the_forced_response_tool_becomes_the_content() -> None:
    completion = to_chat_completion(
        message([{"type": "tool_use", "id": "t", "name": "result", "input": {"a": 1}}], "tool_use"),
        created=1,
        response_tool="result",
    )
    assert json.loads(completion["choices"][0]["message"]["content"]) == {"a": 1}
    assert "tool_calls" not in completion["choices"][0]["message"]
    assert completion["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: Any, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


def test_an_answer_that_is_not_a_message_is_a_502() -> None:
    with pytest.raises(GatewayError) as raised:
        to_chat_completion({"type": "error", "error": {}}, created=1)
    assert raised.value.status == 502


# ------------------------------------------------------------------------------------------------ streams


def feed_all(translator: StreamTranslator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk for event in events for chunk in translator.feed(event["type"], event)]


START = {
    "type": "message_start",
    "message": {"id": "msg_9", "model": "claude-x", "usage": {"input_tokens": 4, "output_tokens": 1}},
}


def test_a_text_stream_becomes_chunks() -> None:
    translator = StreamTranslator(created=5)
    chunks = feed_all(
        translator,
        [
            START,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}},
            {"type": "message_stop"},
        ],
    )
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi "},
        {"content": "there"},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert {c["id"] for c in chunks} == {"chatcmpl-msg_9"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert translator.finished
    assert translator.usage_chunk()["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert translator.usage_chunk()["choices"] == []


def test_a_tool_call_stream_carries_the_id_name_then_the_argument_pieces() -> None:
    translator = StreamTranslator(created=5)
    chunks = feed_all(
        translator,
        [
            START,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me see."}},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "tu", "name": "lookup", "input": {}},
            },
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
            },
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"x"}'}},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        ],
    )
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "tu", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    assert "".join(call["function"]["arguments"] for call in calls) == '{"q": "x"}'
    assert {call["index"] for call in calls} == {0}  # the tool call's index, not the content block's
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_forced_response_tool_streams_as_content() -> None:
    translator = StreamTranslator(created=5, response_tool="result")
    chunks = feed_all(
        translator,
        [
            START,
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t", "name": "result"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
            },
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}},
        ],
    )
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == '{"a": 1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_an_error_event_raises_with_its_kind() -> None:
    translator = StreamTranslator(created=5)
    with pytest.raises(StreamError) as raised:
        translator.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert raised.value.retryable
    assert str(raised.value) == "Overloaded"
    with pytest.raises(StreamError) as invalid:
        translator.feed("error", {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
    assert not invalid.value.retryable
