"""Helpers shared by the tests: the peers' canary keys, the peer providers, timeouts, connection strings.

Fixtures live in conftest.py; everything a test imports lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import anthropic
import openai
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.providers import ProviderCreate
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.pgserver import free_tcp_port

__all__ = [
    "ANTHROPIC_PEER_KEY",
    "DEFAULT_TEST_REQUEST_TIMEOUT",
    "OPENAI_PEER_KEY",
    "PEER_KINDS",
    "PeerProvider",
    "add_peer_providers",
    "configure_reasoning",
    "free_tcp_port",
    "provider_of_peer",
    "psycopg_conninfo",
    "requested_timeout",
]

# Keys long and unique enough that finding them anywhere (database file, logs, output) is a real leak.
OPENAI_PEER_KEY = "sk-canary-openai-7f3c9a1e5b2d4068"
ANTHROPIC_PEER_KEY = "sk-ant-canary-anthropic-2b8e6d4f1a3c5079"


def psycopg_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Loopback peers answer in milliseconds, but a busy 2-core CI machine has stalled one for over 2 s: tests that
# expect an answer get a generous timeout; tests of a hanging provider ask for a short one with
# ``@pytest.mark.request_timeout(seconds)``.
DEFAULT_TEST_REQUEST_TIMEOUT = 15.0


def requested_timeout(request: pytest.FixtureRequest) -> float:
    marker = request.node.get_closest_marker("request_timeout")
    return float(marker.args[0]) if marker else DEFAULT_TEST_REQUEST_TIMEOUT


def add_peer_providers(service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> None:
    """Two validated providers with keys: ``local`` (OpenAI wire format) and ``claude`` (Anthropic)."""
    service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.root_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        )
    )


def configure_reasoning(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    """Provider ``local`` (the OpenAI peer, validated, with its key) answering ``reasoning`` with gpt-4o."""
    service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")


PEER_KINDS = ("openai", "anthropic")


@dataclass(frozen=True)
class PeerProvider:
    """One loopback peer seen as a provider: what a test needs to add it, call it and read what it received.

    The same scenario runs against both wire formats by taking this instead of a peer (fixture
    ``peer_provider`` in conftest.py, parametrised over :data:`PEER_KINDS`).
    """

    kind: str
    peer: OpenAIPeer | AnthropicPeer
    provider_type: str
    model: str
    key: str
    #: The URL a provider of this type is given (the OpenAI SDK wants ``/v1`` in it, the Anthropic SDK not).
    base_url: str
    #: The path a chat call reaches on the peer.
    chat_path: str
    authentication_error: type[Exception]

    @property
    def reply(self) -> str:
        return self.peer.default_reply

    def chat_requests(self) -> int:
        return len(self.peer.requests_to(self.chat_path))


def provider_of_peer(kind: str, peer: OpenAIPeer | AnthropicPeer) -> PeerProvider:
    """``peer`` (an OpenAI peer for ``kind="openai"``, an Anthropic one for ``"anthropic"``) as a provider."""
    if kind == "openai":
        return PeerProvider(
            kind=kind,
            peer=peer,
            provider_type="custom",
            model="gpt-4o",
            key=OPENAI_PEER_KEY,
            base_url=peer.base_url,
            chat_path="/v1/chat/completions",
            authentication_error=openai.AuthenticationError,
        )
    if kind == "anthropic":
        return PeerProvider(
            kind=kind,
            peer=peer,
            provider_type="anthropic",
            model="claude-haiku-4-5",
            key=ANTHROPIC_PEER_KEY,
            base_url=peer.root_url,
            chat_path="/v1/messages",
            authentication_error=anthropic.AuthenticationError,
        )
    raise ValueError(f"unknown peer kind {kind!r}: expected one of {PEER_KINDS}")
