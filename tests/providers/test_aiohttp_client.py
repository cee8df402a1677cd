"""The guarded aiohttp-backed client, through the real OpenAI and Anthropic SDKs against the loopback peers.

Addresses that must never be contacted are refused before any connection is attempted.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable

import anthropic
import httpx2
import openai
import pytest

from llmconfig.errors import ProviderBadResponseError, ProviderBlockedError
from llmconfig.providers.aiohttp_client import GuardedResolver, guarded_aiohttp_client
from llmconfig.providers.anthropic_chat import PassRefusalsThrough
from llmconfig.providers.outbound import OutboundPolicy
from tests.helpers import OPENAI_PEER_KEY, PeerProvider
from tests.peers import OpenAIPeer

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hi"}]


ClientFactory = Callable[..., httpx2.AsyncClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Build guarded aiohttp clients in the test's event loop; closed at teardown."""
    made: list[httpx2.AsyncClient] = []

    def make(deny: str = "", **options: object) -> httpx2.AsyncClient:
        client = guarded_aiohttp_client(OutboundPolicy(deny=deny), **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def openai_sdk(client: httpx2.AsyncClient, base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=OPENAI_PEER_KEY, http_client=client, max_retries=0)


async def chat(target: PeerProvider, client: httpx2.AsyncClient) -> str:
    """One chat call to ``target`` through its own SDK over ``client``; the answer's text."""
    if target.kind == "openai":
        answer = await openai_sdk(client, target.base_url).chat.completions.create(
            model=target.model, messages=MESSAGES
        )
        return answer.choices[0].message.content or ""
    # The middleware lets the guard's refusal itself reach the caller, not the SDK's "Connection error.".
    sdk = anthropic.AsyncAnthropic(
        base_url=target.base_url, api_key=target.key, http_client=client, middleware=[PassRefusalsThrough()]
    )
    message = await sdk.messages.create(model=target.model, max_tokens=64, messages=MESSAGES)
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


async def test_calls_work_and_reuse_one_connection(make_client: ClientFactory, openai_peer: OpenAIPeer) -> None:
    sdk = openai_sdk(make_client(), openai_peer.base_url)
    for _ in range(10):
        answer = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content == "Hello from openai-peer"
    embedded = await sdk.embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(embedded.data[0].embedding) == openai_peer.embedding_dimensions
    stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello from openai-peer"
    assert len(openai_peer.requests) == 12
    # Eleven sequential calls on one keep-alive connection (the stream's is not reused: the SDK stops reading
    # at its last event).
    assert openai_peer.connections_opened == 1
    assert openai_peer.last_request.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"


async def test_a_denied_address_is_refused_and_the_peer_sees_nothing(
    make_client: ClientFactory, peer_provider: PeerProvider
) -> None:
    assert await chat(peer_provider, make_client()) == peer_provider.reply
    with pytest.raises(ProviderBlockedError, match=r"127\.0\.0\.1 is on LLMCONFIG_OUTBOUND_DENY"):
        await chat(peer_provider, make_client("127.0.0.1"))
    # Only the allowed call arrived: the denied one was refused before it connected.
    assert len(peer_provider.peer.requests) == 1 and peer_provider.peer.connections_opened == 1


async def test_a_host_name_resolving_to_a_denied_address_is_refused(
    make_client: ClientFactory, openai_peer: OpenAIPeer
) -> None:
    sdk = openai_sdk(make_client("127.0.0.0/8,::1"), f"http://localhost:{openai_peer.port}/v1")
    with pytest.raises(ProviderBlockedError, match=r"localhost resolves to (127\.0\.0\.1|::1), which is on"):
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert openai_peer.connections_opened == 0


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/v1", "169.254.169.254 is in the link-local range"),
        ("http://[fd00:ec2::254]/v1", "AWS metadata service"),
        ("http://[::ffff:169.254.169.254]/v1", "169.254.169.254 is in the link-local range"),
    ],
)
async def test_a_blocked_ip_literal_is_refused_without_a_resolver(
    make_client: ClientFactory, url: str, words: str
) -> None:
    # aiohttp connects to an IP literal without asking the resolver: the transport checks it first.
    sdk = openai_sdk(make_client(), url)
    with pytest.raises(ProviderBlockedError, match=words):
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)


async def test_environment_proxies_are_not_used(
    make_client: ClientFactory, openai_peer: OpenAIPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OpenAIPeer(api_key=None, name="proxy") as proxy:
        for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(variable, proxy.root_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        sdk = openai_sdk(make_client(), openai_peer.base_url)
        answer = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content == "Hello from openai-peer"
        assert proxy.connections_opened == 0


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [("html", "with an HTML page"), ("garbage", "not valid JSON"), ("huge", "larger than 64 kB")],
)
async def test_answers_are_checked_and_capped(
    make_client: ClientFactory, openai_peer: OpenAIPeer, behaviour: str, words: str
) -> None:
    sdk = openai_sdk(make_client(max_response_bytes=64 * 1024), openai_peer.base_url)
    openai_peer.behaviour = behaviour
    with pytest.raises(ProviderBadResponseError, match=words):
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    openai_peer.behaviour = "ok"
    answer = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello from openai-peer"


async def test_the_resolver_checks_every_address_of_a_name() -> None:
    """The policy plumbing on its own: the real resolver on ``localhost``, no network."""
    allowed = await GuardedResolver(OutboundPolicy()).resolve("localhost", 80, socket.AF_UNSPEC)
    assert allowed and all(str(result["host"]) in ("127.0.0.1", "::1") for result in allowed)
    with pytest.raises(ProviderBlockedError, match="localhost resolves to"):
        await GuardedResolver(OutboundPolicy(deny="127.0.0.0/8,::1")).resolve("localhost", 80, socket.AF_UNSPEC)
    # An allowing host-name entry vouches for whatever the name resolves to; a denying one needs no lookup.
    vouched = GuardedResolver(OutboundPolicy(deny="127.0.0.0/8,::1", allow="localhost"))
    assert await vouched.resolve("localhost", 80, socket.AF_UNSPEC)
    with pytest.raises(ProviderBlockedError, match="the host name db.corp.example is on"):
        await GuardedResolver(OutboundPolicy(deny="*.corp.example")).resolve("db.corp.example", 80)
