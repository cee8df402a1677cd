"""Drive :class:`AnthropicPeer` through the real ``anthropic`` SDK and ``langchain_anthropic``.

The tests use ``claude-haiku-4-5``: the installed SDK emits a DeprecationWarning for
``claude-sonnet-4-5`` (end-of-life listed in ``anthropic._data.DEPRECATED_MODELS``).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, SecretStr

from tests.peers import AnthropicPeer, ScriptedReply, ToolCall

KEY = "sk-test-peer"
MODEL = "claude-haiku-4-5"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class GetWeather(BaseModel):
    """Get the current weather for a city."""

    city: str = Field(description="City name")
    unit: str = Field(default="celsius", description="celsius or fahrenheit")


@pytest.fixture(scope="module")
def running_peer() -> Iterator[AnthropicPeer]:
    # One server per module: LangChain caches its httpx clients per base URL, so reusing the
    # port saves building new TLS contexts for every test. reset() isolates the tests.
    with AnthropicPeer() as running:
        yield running


@pytest.fixture
def peer(running_peer: AnthropicPeer) -> AnthropicPeer:
    running_peer.reset()
    return running_peer


def chat_model(peer: AnthropicPeer, *, key: str = KEY, timeout: float = 5.0, **kwargs: object) -> ChatAnthropic:
    return ChatAnthropic(
        base_url=peer.root_url,
        api_key=SecretStr(key),
        model=MODEL,
        max_retries=0,
        timeout=timeout,
        **kwargs,
    )


SdkFactory = Callable[..., anthropic.Anthropic]


@pytest.fixture
def sdk_client() -> Iterator[SdkFactory]:
    """Build raw SDK clients for a peer; all are closed at teardown (no leaked sockets)."""
    clients: list[anthropic.Anthropic] = []

    def make(peer: AnthropicPeer, *, key: str = KEY, timeout: float = 5.0) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=peer.root_url, api_key=key, max_retries=0, timeout=timeout)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def join(chunks: Iterable[AIMessage]) -> AIMessage:
    """Aggregate streamed chunks the way LangChain does (``AIMessageChunk.__add__``)."""
    joined = functools.reduce(operator.add, chunks)
    assert isinstance(joined, AIMessageChunk)
    return joined


# --------------------------------------------------------------------------- messages


def test_invoke_returns_default_reply_and_usage(peer: AnthropicPeer) -> None:
    message = chat_model(peer).invoke([SystemMessage("be brief"), HumanMessage("what is the weather")])

    assert isinstance(message, AIMessage)
    assert message.content == "Hello from anthropic-peer"
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 6  # words of system + messages
    assert message.usage_metadata["output_tokens"] == 3
    assert message.usage_metadata["total_tokens"] == 9
    assert message.response_metadata["stop_reason"] == "end_turn"

    (request,) = peer.requests_to("/v1/messages")
    assert request.status == 200
    assert request.json["model"] == MODEL
    assert request.json["system"] == "be brief"
    assert isinstance(request.json["max_tokens"], int)
    assert request.headers["anthropic-version"]
    # anthropic>=2 sends api_key= as a Bearer token (not x-api-key); the peer accepts both.
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_stream_yields_word_chunks_with_usage(peer: AnthropicPeer) -> None:
    peer.script(ScriptedReply(text="one two three four five"))
    chunks = list(chat_model(peer).stream("count for me"))

    texts = [c.text for c in chunks if c.text]
    assert len(texts) == 5
    assert "".join(texts) == "one two three four five"
    message = join(chunks)
    assert isinstance(message, AIMessageChunk)
    assert message.usage_metadata is not None
    assert (
        message.usage_metadata["input_tokens"],
        message.usage_metadata["output_tokens"],
        message.usage_metadata["total_tokens"],
    ) == (3, 5, 8)
    assert message.response_metadata["stop_reason"] == "end_turn"
    assert peer.last_request.json["stream"] is True


def test_sdk_stream_helper_accumulates_final_message(peer: AnthropicPeer, sdk_client: SdkFactory) -> None:
    peer.script(ScriptedReply(text="Checking.", tool_calls=[ToolCall("lookup", {"q": "x"}, id="toolu_fixed")]))
    with sdk_client(peer).messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Checking."
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    tool_use = final.content[1]
    assert isinstance(tool_use, anthropic.types.ToolUseBlock)
    assert (tool_use.id, tool_use.name, tool_use.input) == ("toolu_fixed", "lookup", {"q": "x"})


async def test_async_invoke_and_stream_with_text_and_tool(peer: AnthropicPeer) -> None:
    peer.script(
        ScriptedReply(text="Let me look.", tool_calls=[ToolCall("GetWeather", {"city": "Oslo"})]),
        ScriptedReply(text="Let me look again.", tool_calls=[ToolCall("GetWeather", {"city": "Bergen"})]),
    )
    model = chat_model(peer).bind_tools([GetWeather])
    message = await model.ainvoke("weather in Oslo?")
    assert isinstance(message, AIMessage)
    assert message.text == "Let me look."
    assert message.tool_calls[0]["args"] == {"city": "Oslo"}
    assert (message.tool_calls[0]["id"] or "").startswith("toolu_")

    streamed = join([chunk async for chunk in model.astream("and Bergen?")])
    assert isinstance(streamed, AIMessageChunk)
    assert streamed.text == "Let me look again."
    assert streamed.tool_calls[0]["args"] == {"city": "Bergen"}


def test_count_tokens_endpoint(peer: AnthropicPeer) -> None:
    count = chat_model(peer).get_num_tokens_from_messages([HumanMessage("one two three")])
    assert count == 3
    assert peer.last_request.path == "/v1/messages/count_tokens"


def test_unknown_model_is_404(peer: AnthropicPeer, sdk_client: SdkFactory) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk_client(peer).messages.create(
            model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body == {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-nope"}}


# --------------------------------------------------------------------------- models & auth


def test_models_list_pages_and_disabled_endpoint(peer: AnthropicPeer, sdk_client: SdkFactory) -> None:
    client = sdk_client(peer)
    models = list(client.models.list())
    assert [m.id for m in models] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert models[0].display_name == "Claude Sonnet 4.5"
    assert models[0].created_at.year == 2025

    assert [m.id for m in client.models.list(limit=1)] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert [r.query for r in peer.requests_to("/v1/models")][-2:] == [
        {"limit": "1"},
        {"limit": "1", "after_id": "claude-sonnet-4-5"},
    ]
    assert client.models.retrieve(MODEL).id == MODEL

    peer.models_endpoint = False
    with pytest.raises(anthropic.NotFoundError):
        client.models.list()


def test_x_api_key_header_is_accepted_and_checked(peer: AnthropicPeer) -> None:
    with anthropic.Anthropic(base_url=peer.root_url, default_headers={"x-api-key": KEY}, max_retries=0) as good:
        assert next(m.id for m in good.models.list()) == "claude-sonnet-4-5"
    assert peer.last_request.headers["x-api-key"] == KEY
    assert "authorization" not in peer.last_request.headers

    with (
        anthropic.Anthropic(base_url=peer.root_url, default_headers={"x-api-key": "nope"}, max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad.models.list()


def test_missing_anthropic_version_is_rejected(peer: AnthropicPeer, sdk_client: SdkFactory) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk_client(peer).models.list(extra_headers={"anthropic-version": anthropic.omit})
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"},
    }


# --------------------------------------------------------------------------- misbehaviour


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("html", AttributeError),
        ("garbage", json.JSONDecodeError),
        ("error500", anthropic.InternalServerError),
        ("ratelimit429", anthropic.RateLimitError),
    ],
)
def test_misbehaviour_makes_models_list_raise(
    peer: AnthropicPeer, behaviour: str, expected: type[Exception], sdk_client: SdkFactory
) -> None:
    peer.behaviour = behaviour
    with pytest.raises(expected):
        sdk_client(peer).models.list()


def test_reset_huge_and_redirect_apply_to_every_endpoint(peer: AnthropicPeer, sdk_client: SdkFactory) -> None:
    peer.behaviour = "reset"
    with pytest.raises(anthropic.APIConnectionError):
        chat_model(peer).invoke("hi")
    peer.behaviour = "huge"
    peer.huge_bytes = 100_000
    with pytest.raises(json.JSONDecodeError):
        sdk_client(peer).models.list()
    peer.behaviour = "redirect"
    peer.redirect_to = "https://elsewhere.invalid/v1/messages"
    response = httpx.post(f"{peer.root_url}/v1/messages", json={}, timeout=5)
    assert response.status_code == 302
    assert response.headers["location"] == "https://elsewhere.invalid/v1/messages"


# --------------------------------------------------------------------------- lifecycle


def test_context_manager_stop_refuses_connections(sdk_client: SdkFactory) -> None:
    with AnthropicPeer(models=["claude-test"], name="ctx") as peer:
        client = sdk_client(peer)
        assert [m.id for m in client.models.list()] == ["claude-test"]
        assert peer.running
    assert not peer.running
    with pytest.raises(anthropic.APIConnectionError):
        client.models.list()
