"""The world of the ``/v1`` tests: providers on the loopback peers, configured types, a client token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.providers import ProviderCreate
from tests.api.conftest import ApiContext
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer


@dataclass
class Gateway:
    service: LLMConfigService
    url: str
    token: str
    openai_peer: OpenAIPeer
    anthropic_peer: AnthropicPeer
    admin_token: str
    viewer_token: str

    def sdk(self, token: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=token or self.token, max_retries=0, timeout=30)

    def usage_rows(self) -> list[Any]:
        assert self.service.usage_recorder.flush()
        report = self.service.usage.report(group_by=["interaction_type", "provider", "model"])
        return report.groups


def configured_gateway(
    api: ApiContext, live_server: str, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> Gateway:
    """``reasoning`` on the OpenAI peer (gpt-4o, temperature 0.3, max_tokens 77), ``planning`` on the Anthropic
    peer (claude-sonnet-4-5), ``embeddings`` on the OpenAI peer, and a client token for all of them."""
    service = api.service
    service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        ),
        validate=False,
    )
    service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        ),
        validate=False,
    )
    service.config.set_global(
        "reasoning",
        ConfigUpdate(provider_id="local", model_name="gpt-4o", temperature=0.3, max_tokens=77),
        actor="t",
    )
    service.config.set_global(
        "planning",
        ConfigUpdate(provider_id="claude", model_name="claude-sonnet-4-5", temperature=0.4, max_tokens=300),
        actor="t",
    )
    service.config.set_global(
        "embeddings", ConfigUpdate(provider_id="local", model_name="text-embedding-3-small"), actor="t"
    )
    token, _ = service.tokens.create(role="client", name="agents")
    return Gateway(service, live_server, token, openai_peer, anthropic_peer, api.admin_token, api.viewer_token)
