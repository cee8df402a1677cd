"""Drive :class:`OpenAIPeer` through the real ``openai`` SDK and ``langchain_openai``."""

from __future__ import annotations

import functools
import json
import operator
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel, Field, SecretStr

from tests.peers import OpenAIPeer, ScriptedReply, ToolCall
from tests.peers.base import HUGE_BODY_BYTES

KEY = "sk-test-peer"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class GetWeather(BaseModel):
    """Get the current weather for a city."""

    city: str = Field(description="City name")
    unit: str = Field(default="celsius", description="celsius or fahrenheit")


@pytest.fixture(scope="module")
def running_peer() -> Iterator[OpenAIPeer]:
    # One server per module: LangChain caches its httpx clients per base URL, so reusing the
    # port saves building new TLS contexts for every test. reset() isolates the tests.
    with OpenAIPeer() as running:
        yield running


@pytest.fixture
def peer(running_peer: OpenAIPeer) -> OpenAIPeer:
    running_peer.reset()
    return running_peer


def chat_model(peer: OpenAIPeer, *, key: str = KEY, timeout: float = 5.0, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=peer.base_url,
        api_key=SecretStr(key),
        model="gpt-4o",
        max_retries=0,
        timeout=timeout,
        **kwargs,
    )


def embeddings_model(peer: OpenAIPeer, *, timeout: float = 5.0) -> OpenAIEmbeddings:
    # OpenAIEmbeddings declares these as aliases the pydantic mypy plugin does not see.
    return OpenAIEmbeddings(  # type: ignore[call-arg]
        base_url=peer.base_url,
        api_key=SecretStr(KEY),
        model="text-embedding-3-small",
        check_embedding_ctx_length=False,
        max_retries=0,
        timeout=timeout,
    )


SdkFactory = Callable[..., openai.OpenAI]


@pytest.fixture
def sdk_client() -> Iterator[SdkFactory]:
    """Build raw SDK clients for a peer; all are closed at teardown (no leaked sockets)."""
    clients: list[openai.OpenAI] = []

    def make(peer: OpenAIPeer, *, key: str = KEY, timeout: float = 5.0) -> openai.OpenAI:
        client = openai.OpenAI(base_url=peer.base_url, api_key=key, max_retries=0, timeout=timeout)
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


# --------------------------------------------------------------------------- chat


def test_invoke_returns_default_reply_and_usage(peer: OpenAIPeer) -> None:
    message = chat_model(peer).invoke("what is the weather")

    assert isinstance(message, AIMessage)
    assert message.content == "Hello from openai-peer"
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 4  # words of the prompt
    assert message.usage_metadata["output_tokens"] == 3  # words of the reply
    assert message.usage_metadata["total_tokens"] == 7
    assert message.response_metadata["finish_reason"] == "stop"

    (request,) = peer.requests_to("/v1/chat/completions")
    assert request.method == "POST"
    assert request.status == 200
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["model"] == "gpt-4o"
    assert request.json["messages"] == [{"role": "user", "content": "what is the weather"}]


def test_stream_yields_word_chunks_with_usage(peer: OpenAIPeer) -> None:
    peer.script(ScriptedReply(text="one two three four five"))
    chunks = list(chat_model(peer, stream_usage=True).stream("count for me"))

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

    request = peer.last_request
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.status == 200


def test_stream_without_usage_option_has_no_usage(peer: OpenAIPeer) -> None:
    chunks = list(chat_model(peer, stream_usage=False).stream("hi"))
    assert "".join(c.text for c in chunks) == peer.default_reply
    assert join(chunks).usage_metadata is None
    assert "stream_options" not in peer.last_request.json


def test_text_and_tool_calls_together_with_generated_id(peer: OpenAIPeer) -> None:
    peer.script(ScriptedReply(text="Let me look.", tool_calls=[ToolCall("GetWeather", {"city": "Oslo"})]))
    message = chat_model(peer).bind_tools([GetWeather]).invoke("weather in Oslo?")
    assert isinstance(message, AIMessage)
    assert message.content == "Let me look."
    assert message.tool_calls[0]["args"] == {"city": "Oslo"}
    assert (message.tool_calls[0]["id"] or "").startswith("call_")


async def test_async_invoke_and_stream(peer: OpenAIPeer) -> None:
    model = chat_model(peer, stream_usage=True)
    message = await model.ainvoke("hello there")
    assert message.content == peer.default_reply
    chunks = [chunk async for chunk in model.astream("hello there")]
    assert len([c for c in chunks if c.text]) >= 3
    assert "".join(c.text for c in chunks) == peer.default_reply
    assert peer.requests[-1].headers["x-stainless-async"].startswith("async:")


def test_unknown_model_is_404_model_not_found(peer: OpenAIPeer, sdk_client: SdkFactory) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk_client(peer).chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        ChatOpenAI(base_url=peer.base_url, api_key=SecretStr(KEY), model="gpt-nope", max_retries=0).invoke("hi")


# --------------------------------------------------------------------------- embeddings


def test_embeddings_are_deterministic(peer: OpenAIPeer) -> None:
    embeddings = embeddings_model(peer)
    query = embeddings.embed_query("hello world")
    docs = embeddings.embed_documents(["hello world", "goodbye world"])

    assert len(query) == 8
    assert all(len(v) == 8 for v in docs)
    assert docs[0] == query == embeddings.embed_query("hello world")
    assert docs[1] != docs[0]
    assert query == peer.embedding_for("hello world")
    assert abs(sum(x * x for x in query) - 1.0) < 1e-5  # unit length

    requests = peer.requests_to("/v1/embeddings", "POST")
    assert [r.json["input"] for r in requests] == [["hello world"], ["hello world", "goodbye world"], ["hello world"]]
    request = requests[1]
    assert request.json["model"] == "text-embedding-3-small"
    # The openai SDK asks for base64 unless encoding_format is given explicitly.
    assert request.json["encoding_format"] == "base64"


def test_embeddings_float_format_tokens_and_dimensions(peer: OpenAIPeer, sdk_client: SdkFactory) -> None:
    client = sdk_client(peer)
    response = client.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]], encoding_format="float", dimensions=4
    )
    assert [d.index for d in response.data] == [0, 1]
    assert response.data[0].embedding == peer.embedding_for([1, 2, 3], dimensions=4)
    assert response.usage.prompt_tokens == 5
    single = client.embeddings.create(model="text-embedding-3-small", input="hello world", encoding_format="float")
    assert single.data[0].embedding == peer.embedding_for("hello world")
    assert single.usage.total_tokens == 2


async def test_async_embeddings(peer: OpenAIPeer) -> None:
    vector = await embeddings_model(peer).aembed_query("async text")
    assert vector == peer.embedding_for("async text")


# --------------------------------------------------------------------------- models & auth


def test_models_list_and_disabled_endpoint(peer: OpenAIPeer, sdk_client: SdkFactory) -> None:
    client = sdk_client(peer)
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    assert client.models.retrieve("gpt-4o-mini").owned_by == "peer"
    peer.models_endpoint = False
    with pytest.raises(openai.NotFoundError):
        client.models.list()


def test_no_api_key_configured_accepts_anything() -> None:
    with OpenAIPeer(api_key=None, models=["local-model"], name="local") as peer:
        message = ChatOpenAI(
            base_url=peer.base_url, api_key=SecretStr("whatever"), model="local-model", max_retries=0
        ).invoke("hi")
        assert message.content == "Hello from local"


# --------------------------------------------------------------------------- misbehaviour


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("html", AttributeError),  # the SDK returns the page as str
        ("garbage", json.JSONDecodeError),
        ("error500", openai.InternalServerError),
        ("ratelimit429", openai.RateLimitError),
    ],
)
def test_misbehaviour_makes_embeddings_and_models_raise(
    peer: OpenAIPeer, behaviour: str, expected: type[Exception], sdk_client: SdkFactory
) -> None:
    peer.behaviour = behaviour
    with pytest.raises(expected):
        embeddings_model(peer).embed_query("hi")
    with pytest.raises((expected, AttributeError)):
        sdk_client(peer).models.list()


def test_reset_drops_the_connection_with_a_tcp_reset(peer: OpenAIPeer, sdk_client: SdkFactory) -> None:
    peer.behaviour = "reset"
    with socket.create_connection(("127.0.0.1", peer.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: peer\r\n\r\n")
        # An RST, not an orderly close (which would read as b"").
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)
    with pytest.raises(openai.APIConnectionError):
        chat_model(peer).invoke("hi")
    assert peer.last_request.path == "/v1/chat/completions" and peer.last_request.status is None
    peer.behaviour = "ok"
    assert chat_model(peer).invoke("hi").content == peer.default_reply


def test_huge_streams_fifty_megabytes_in_chunks(peer: OpenAIPeer) -> None:
    peer.behaviour = "huge"
    with httpx.stream("GET", f"{peer.base_url}/models", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked" and "content-length" not in response.headers
        chunks = list(response.iter_raw())
    assert sum(len(c) for c in chunks) == HUGE_BODY_BYTES == 50 * 1024 * 1024
    assert chunks[0].startswith(b'{"object":"list"')
    assert max(len(c) for c in chunks) < 1024 * 1024  # sent piece by piece, never held whole

    peer.huge_bytes = 4096
    body = httpx.get(f"{peer.base_url}/chat/completions", timeout=5).content
    assert len(body) == 4096
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_redirect_answers_302_with_the_configured_location(peer: OpenAIPeer) -> None:
    peer.behaviour = "redirect"
    unset = httpx.get(f"{peer.base_url}/models", timeout=5)
    assert unset.status_code == 500 and b"redirect_to" in unset.content
    peer.redirect_to = "/v1/models/gpt-4o"
    response = httpx.get(f"{peer.base_url}/models", timeout=5)
    assert response.status_code == 302 and response.headers["location"] == "/v1/models/gpt-4o"
    peer.reset()
    assert peer.redirect_to is None and peer.behaviour == "ok"


def test_unknown_behaviour_is_rejected(peer: OpenAIPeer) -> None:
    with pytest.raises(ValueError, match="unknown behaviour"):
        peer.behaviour = "sulk"


# --------------------------------------------------------------------------- lifecycle


def test_stop_is_prompt_while_hanging_and_port_refuses_afterwards(sdk_client: SdkFactory) -> None:
    peer = OpenAIPeer().start()
    client = sdk_client(peer, timeout=5)
    assert next(m.id for m in client.models.list()) == "gpt-4o"  # leaves a pooled keep-alive connection

    peer.behaviour = "hang"
    peer.hang_seconds = 30
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.models.list()
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while len(peer.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    peer.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not caller.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], openai.APIConnectionError)

    with pytest.raises(openai.APIConnectionError):
        client.models.list()
    with pytest.raises(openai.APIConnectionError):
        sdk_client(peer).models.list()
