"""Helpers shared by the tests: the peers' canary keys, the peer providers, timeouts, connection strings.

Fixtures live in conftest.py; everything a test imports lives here.
"""

from __future__ import annotations

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
    "add_peer_providers",
    "configure_reasoning",
    "free_tcp_port",
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
