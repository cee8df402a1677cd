"""Server-sent events on the way through, and how a request is checked and filled from the configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmconfig.gateway.errors import GatewayError, scrubbed, upstream_message
from llmconfig.gateway.requests import api_params, openai_chat_body, parse_chat
from llmconfig.gateway.streams import EventSplitter, PassThrough


def chunk(usage: Any = None, choices: bool = True) -> bytes:
    payload: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}}] if choices else [],
    }
    if usage is not None:
        payload["usage"] = usage
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode()


def test_events_split_across_reads_and_line_endings_come_out_whole() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\n\nda") == [b"data: 1"]
    assert splitter.feed(b"ta: 2\r") == []
    assert splitter.feed(b"\n\r\ndata: 3\n\n") == [b"data: 2", b"data: 3"]
    assert splitter.feed(b"data: 4") == []
    assert splitter.rest() == b"data: 4"


def test_the_usage_chunk_the_client_did_not_ask_for_is_dropped_and_noted() -> None:
    relay = PassThrough(include_usage=False)
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    sent = relay.events([chunk(), chunk(usage, choices=False), b"data: [DONE]"])
    assert sent == chunk() + b"\n\n" + b"data: [DONE]\n\n"
    assert relay.usage == usage and relay.done


def test_usage_on_a_chunk_with_choices_is_removed_from_it_when_unasked() -> None:
    relay = PassThrough(include_usage=False)
    sent = relay.events([chunk({"prompt_tokens": 1, "completion_tokens": 1})])
    assert b"usage" not in sent and b"choices" in sent
    assert relay.usage == {"prompt_tokens": 1, "completion_tokens": 1}


def test_the_usage_chunk_passes_untouched_when_asked_for() -> None:
    relay = PassThrough(include_usage=True)
    events = [chunk(None), chunk({"prompt_tokens": 1}, choices=False)]
    assert relay.events(events) == b"\n\n".join(events) + b"\n\n"


def test_null_usage_is_passed_without_being_parsed() -> None:
    relay = PassThrough(include_usage=False)
    event = b'data: {"usage":null,"choices":[{"delta":{"content":"x"}}]}'
    assert relay.events([event]) == event + b"\n\n"
    assert relay.usage is None


def test_request_parameters_win_and_configured_ones_fill_the_rest() -> None:
    request = parse_chat(
        b'{"model": "reasoning", "messages": [{"role": "user", "content": "x"}], "temperature": 1.2, "user": "u1"}'
    )
    assert (request.interaction_type, request.user_id) == ("reasoning", "u1")
    body = openai_chat_body(
        request, model="gpt-4o", temperature=0.1, max_tokens=50, extra_params={"top_p": 0.3, "max_retries": 2}
    )
    assert body["model"] == "gpt-4o"
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (1.2, 50, 0.3)
    assert "max_retries" not in body and "user" not in body


def test_a_stream_always_asks_the_provider_for_usage() -> None:
    request = parse_chat(b'{"model": "t", "messages": [{"role": "user", "content": "x"}], "stream": true}')
    body = openai_chat_body(request, model="m", temperature=None, max_tokens=None, extra_params={})
    assert body["stream_options"] == {"include_usage": True}
    assert not request.include_usage


def test_configured_max_tokens_gives_way_to_max_completion_tokens() -> None:
    request = parse_chat(b'{"model": "t", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9}')
    body = openai_chat_body(request, model="m", temperature=None, max_tokens=50, extra_params={})
    assert "max_tokens" not in body and body["max_completion_tokens"] == 9


def test_model_kwargs_of_a_configuration_are_api_parameters() -> None:
    assert api_params({"model_kwargs": {"seed": 1}, "timeout": 3, "top_p": 0.5}) == {"seed": 1, "top_p": 0.5}


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"model": 3, "messages": []}', "model"),
        (b'{"model": "t\\u0000", "messages": [{"role": "user"}]}', "model"),
        (b'{"model": "t", "messages": [{"role": "user"}], "user": "a\\u0000b"}', "user"),
        (b'{"model": "t", "messages": [{"role": "user"}], "temperature": true}', "temperature"),
        (b'{"model": "t", "messages": [{"role": "user"}], "top_p": 1.5}', "top_p"),
        (b'{"model": "t", "messages": [{"role": "user"}], "tools": {}}', "tools"),
        (b'{"model": "t", "messages": [{"role": "user"}], "n": 0}', "n"),
        (b'{"model": "t", "messages": [{"role": "user"}], "stream": true, "stream_options": 1}', "stream_options"),
    ],
)
def test_what_the_gateway_depends_on_is_checked(raw: bytes, param: str) -> None:
    with pytest.raises(GatewayError) as raised:
        parse_chat(raw)
    assert (raised.value.status, raised.value.param) == (400, param)


def test_a_quoted_key_is_cut_from_a_provider_message() -> None:
    key = "sk-canary-openai-7f3c9a1e5b2d4068"
    assert scrubbed(f"Incorrect API key provided: {key}.", key) == "Incorrect API key provided: ***."
    assert key[:12] not in scrubbed(f"Incorrect API key provided: {key[:12]}****4068.", key)
    assert scrubbed("nothing to hide", key) == "nothing to hide"


def test_provider_messages_of_both_shapes_are_read() -> None:
    assert upstream_message(b'{"error": {"message": "bad temperature"}}') == "bad temperature"
    assert upstream_message(b'{"type": "error", "error": {"type": "x", "message": "overloaded"}}') == "overloaded"
    assert upstream_message(b"<html>") is None


def test_chunks_read_together_with_an_anthropic_error_are_sent_before_the_error() -> None:
    from llmconfig.gateway.anthropic_stream import StreamError
    from llmconfig.gateway.streams import AnthropicToOpenAI

    relay = AnthropicToOpenAI(created=1, include_usage=False, response_tool=None)
    events = [
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}',
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    ]
    sent = relay.events(events)
    assert b'"content":"Hi"' in sent
    with pytest.raises(StreamError, match="Overloaded"):
        relay.raise_failure()
    relay.raise_failure()  # raised once
