"""What both loopback peers promise alike, each driven through its own real SDK and LangChain model.

Each test runs once against :class:`OpenAIPeer` and once against :class:`AnthropicPeer`; what only one wire
format has (embeddings, ``count_tokens``, the ``anthropic-version`` header, …) is tested in
test_openai_peer.py and test_anthropic_peer.py.
"""

from __future__ import annotations

import functools
import json
import operator
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, SecretStr

from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply, ToolCall
from tests.peers.base import BasePeer

KEY = "sk-test-peer"
OTHER_KEY = "sk-test-peer-other-key"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class GetWeather(BaseModel):
    """Get the current weather for a city."""

    city: str = Field(description="City name")
    unit: str = Field(default="celsius", description="celsius or fahrenheit")


@dataclass(frozen=True)
class Wire:
    """One wire format: its peer, its SDK's errors, and how a test builds clients for it."""

    kind: str
    peer_class: type[BasePeer]
    sdk: Any  # the module: openai or anthropic
    model: str
    chat_path: str
    #: The body of the 401 a wrong key gets.
    unauthorized_body: dict[str, Any]
    #: What the LangChain model raises when the peer answers a chat call with each behaviour.
    invoke_errors: dict[str, type[Exception]]
    stream_errors: dict[str, type[Exception]]
    #: The key of ``response_metadata`` saying why the model stopped, and its value after a tool call.
    stop_key: str
    tool_stop: str
    tool_id_prefix: str
    #: The name of each tool a request offered.
    tool_names: Callable[[dict[str, Any]], list[str]] = field(repr=False)
    #: What a rate-limited answer carries besides ``retry-after`` (read off the SDK's error).
    rate_limit_mark: Callable[[Any], object] = field(repr=False)
    expected_rate_limit_mark: object = None

    def chat_model(self, peer: BasePeer, *, key: str = KEY, timeout: float = 5.0) -> BaseChatModel:
        if self.kind == "openai":
            return ChatOpenAI(
                base_url=peer.base_url,
                api_key=SecretStr(key),
                model=self.model,
                max_retries=0,
                timeout=timeout,
                stream_usage=True,
            )
        return ChatAnthropic(
            base_url=peer.root_url, api_key=SecretStr(key), model=self.model, max_retries=0, timeout=timeout
        )

    def sdk_client(self, root_url: str, *, key: str = KEY) -> Any:
        """A raw SDK client for the peer at ``root_url``; the caller closes it."""
        if self.kind == "openai":
            return openai.OpenAI(base_url=f"{root_url}/v1", api_key=key, max_retries=0, timeout=5)
        return anthropic.Anthropic(base_url=root_url, api_key=key, max_retries=0, timeout=5)


WIRES = {
    "openai": Wire(
        kind="openai",
        peer_class=OpenAIPeer,
        sdk=openai,
        model="gpt-4o",
        chat_path="/v1/chat/completions",
        unauthorized_body={
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        },
        invoke_errors={
            # The SDK hands a non-JSON body back as `str`; LangChain then refuses it.
            "html": ValueError,
            "garbage": json.JSONDecodeError,
            "error500": openai.InternalServerError,
            "ratelimit429": openai.RateLimitError,
        },
        stream_errors={
            # An HTML or garbage body carries no SSE event: the SDK yields nothing and LangChain raises
            # "No generation chunks were returned".
            "html": ValueError,
            "garbage": ValueError,
            "error500": openai.InternalServerError,
            "ratelimit429": openai.RateLimitError,
        },
        stop_key="finish_reason",
        tool_stop="tool_calls",
        tool_id_prefix="call_",
        tool_names=lambda body: [t["function"]["name"] for t in body["tools"]],
        rate_limit_mark=lambda error: error.code,
        expected_rate_limit_mark="rate_limit_exceeded",
    ),
    "anthropic": Wire(
        kind="anthropic",
        peer_class=AnthropicPeer,
        sdk=anthropic,
        # claude-sonnet-4-5 makes the installed SDK warn (end-of-life in anthropic._data.DEPRECATED_MODELS).
        model="claude-haiku-4-5",
        chat_path="/v1/messages",
        unauthorized_body={"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
        invoke_errors={
            # The SDK hands a non-JSON body back as `str`; LangChain then fails on it.
            "html": AttributeError,
            "garbage": json.JSONDecodeError,
            "error500": anthropic.InternalServerError,
            "ratelimit429": anthropic.RateLimitError,
        },
        stream_errors={
            "html": ValueError,  # no SSE event at all -> "No generation chunks were returned"
            "garbage": ValueError,
            "error500": anthropic.InternalServerError,
            "ratelimit429": anthropic.RateLimitError,
        },
        stop_key="stop_reason",
        tool_stop="tool_use",
        tool_id_prefix="toolu_",
        tool_names=lambda body: [t["name"] for t in body["tools"]],
        rate_limit_mark=lambda error: error.response.headers["request-id"][:4],
        expected_rate_limit_mark="req_",
    ),
}


@pytest.fixture(scope="module", params=list(WIRES))
def wire_and_peer(request: pytest.FixtureRequest) -> Iterator[tuple[Wire, BasePeer]]:
    # One server per wire format and module: LangChain caches its httpx clients per base URL, so reusing the
    # port saves building new TLS contexts for every test. reset() isolates the tests.
    wire = WIRES[request.param]
    with wire.peer_class() as running:
        yield wire, running


@pytest.fixture
def wire(wire_and_peer: tuple[Wire, BasePeer]) -> Wire:
    return wire_and_peer[0]


@pytest.fixture
def peer(wire_and_peer: tuple[Wire, BasePeer]) -> BasePeer:
    running = wire_and_peer[1]
    running.reset()
    return running


@pytest.fixture
def sdk_client(wire: Wire) -> Iterator[Callable[..., Any]]:
    """Build raw SDK clients for a peer; all are closed at teardown (no leaked sockets)."""
    clients: list[Any] = []

    def make(peer: BasePeer, *, key: str = KEY) -> Any:
        client = wire.sdk_client(peer.root_url, key=key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def join(chunks: Iterable[Any]) -> AIMessage:
    """Aggregate streamed chunks the way LangChain does (``AIMessageChunk.__add__``)."""
    joined = functools.reduce(operator.add, chunks)
    assert isinstance(joined, AIMessageChunk)
    return joined


# --------------------------------------------------------------------------- replies


def test_scripted_replies_are_fifo_then_default(wire: Wire, peer: BasePeer) -> None:
    peer.script(ScriptedReply(text="first"), ScriptedReply(text="second"))
    model = wire.chat_model(peer)
    assert [model.invoke("x").content for _ in range(3)] == ["first", "second", peer.default_reply]
    assert peer.pending_replies == 0


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_bind_tools_scripted_tool_call(wire: Wire, peer: BasePeer, mode: str) -> None:
    call_id = f"{wire.tool_id_prefix}fixed"
    peer.script(ScriptedReply(tool_calls=[ToolCall("GetWeather", {"city": "Paris", "unit": "celsius"}, id=call_id)]))
    model = wire.chat_model(peer).bind_tools([GetWeather])

    prompt = "weather in Paris?"
    message = model.invoke(prompt) if mode == "invoke" else join(list(model.stream(prompt)))

    assert isinstance(message, AIMessage)
    assert message.tool_calls == [
        {"name": "GetWeather", "args": {"city": "Paris", "unit": "celsius"}, "id": call_id, "type": "tool_call"}
    ]
    assert message.response_metadata[wire.stop_key] == wire.tool_stop
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 4  # words of '{"city": "Paris", "unit": "celsius"}'
    assert wire.tool_names(peer.last_request.json) == ["GetWeather"]


# --------------------------------------------------------------------------- auth and keys


def test_wrong_key_raises_authentication_error(wire: Wire, peer: BasePeer, sdk_client: Callable[..., Any]) -> None:
    with pytest.raises(wire.sdk.AuthenticationError) as caught:
        sdk_client(peer, key="sk-wrong-key").models.list()
    assert caught.value.status_code == 401
    assert caught.value.body == wire.unauthorized_body
    assert "sk-wrong-key" not in caught.value.response.text

    with pytest.raises(wire.sdk.AuthenticationError):
        wire.chat_model(peer, key="sk-wrong-key").invoke("hi")
    with pytest.raises(wire.sdk.AuthenticationError):
        list(wire.chat_model(peer, key="sk-wrong-key").stream("hi"))

    assert [r.status for r in peer.requests] == [401, 401, 401]
    # Both SDKs send the key as a Bearer token (anthropic>=2 too, not x-api-key); the peers accept both.
    assert peer.requests[-1].headers["authorization"] == "Bearer sk-wrong-key"
    assert "sk-wrong-key" not in repr(peer.requests[-1])  # credentials are redacted in repr


def test_answers_per_key_and_records_the_key_each_request_carried(wire: Wire, peer: BasePeer) -> None:
    peer.accepted_keys.add(OTHER_KEY)
    peer.answer_key(KEY, 429, retry_after="7")
    with pytest.raises(wire.sdk.RateLimitError) as limited:
        wire.chat_model(peer).invoke("hi")
    assert limited.value.response.headers["retry-after"] == "7"
    assert wire.chat_model(peer, key=OTHER_KEY).invoke("hi").content == peer.default_reply
    peer.answer_key(OTHER_KEY, 401)
    with pytest.raises(wire.sdk.AuthenticationError):
        wire.chat_model(peer, key=OTHER_KEY).invoke("hi")
    with pytest.raises(wire.sdk.AuthenticationError):
        wire.chat_model(peer, key="sk-unknown-key").invoke("hi")
    assert peer.keys_sent(wire.chat_path) == [KEY, OTHER_KEY, OTHER_KEY, "sk-unknown-key"]
    assert [r.status for r in peer.requests] == [429, 200, 401, 401]
    assert KEY not in repr(peer.requests[0]) and peer.requests[0].key_hint == KEY[-4:]
    peer.reset()
    assert peer.key_answers == {} and peer.accepted_keys == set()
    assert wire.chat_model(peer).invoke("hi").content == peer.default_reply


# --------------------------------------------------------------------------- misbehaviour


@pytest.mark.parametrize("behaviour", ["html", "garbage", "error500", "ratelimit429"])
def test_misbehaviour_makes_invoke_raise(wire: Wire, peer: BasePeer, behaviour: str) -> None:
    peer.behaviour = behaviour
    with pytest.raises(wire.invoke_errors[behaviour]):
        wire.chat_model(peer).invoke("hi")
    assert peer.last_request.status == {"error500": 500, "ratelimit429": 429}.get(behaviour, 200)


@pytest.mark.parametrize("behaviour", ["html", "garbage", "error500", "ratelimit429"])
def test_misbehaviour_makes_stream_raise(wire: Wire, peer: BasePeer, behaviour: str) -> None:
    peer.behaviour = behaviour
    with pytest.raises(wire.stream_errors[behaviour]):
        list(wire.chat_model(peer).stream("hi"))


def test_ratelimit_sends_retry_after_zero(wire: Wire, peer: BasePeer, sdk_client: Callable[..., Any]) -> None:
    peer.behaviour = "ratelimit429"
    with pytest.raises(wire.sdk.RateLimitError) as caught:
        sdk_client(peer).models.list()
    assert caught.value.response.headers["retry-after"] == "0"
    assert wire.rate_limit_mark(caught.value) == wire.expected_rate_limit_mark


def test_hang_times_out_then_recovers(wire: Wire, peer: BasePeer) -> None:
    peer.behaviour = "hang"
    peer.hang_seconds = 5
    started = time.monotonic()
    with pytest.raises(wire.sdk.APITimeoutError):
        wire.chat_model(peer, timeout=0.5).invoke("hi")
    with pytest.raises(wire.sdk.APITimeoutError):
        list(wire.chat_model(peer, timeout=0.5).stream("hi"))
    assert time.monotonic() - started < 3
    peer.behaviour = "ok"
    assert wire.chat_model(peer).invoke("hi").content == peer.default_reply


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_standalone_module_prints_ready_and_serves(wire: Wire, stop: signal.Signals) -> None:
    module = f"tests.peers.{wire.kind}_peer"
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--api-key", "k-cli", "--models", "a,b"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(15, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        root_url = line.removeprefix("READY ")
        with wire.sdk_client(root_url, key="k-cli") as client:
            assert [m.id for m in client.models.list()] == ["a", "b"]
        with wire.sdk_client(root_url, key="bad") as bad, pytest.raises(wire.sdk.AuthenticationError):
            bad.models.list()
    finally:
        process.send_signal(stop)
        try:
            returncode = process.wait(timeout=5)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert returncode == 0
