"""Every version is kept; a rollback restores exactly the earlier fields, as a new audited version."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate, FallbackTarget
from llmconfig.errors import NotFoundError, ValidationError
from llmconfig.providers import ProviderCreate
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer


@pytest.fixture
def local(service: LLMConfigService, openai_peer: OpenAIPeer) -> str:
    provider, _ = service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    return provider.id


def test_history_lists_every_version_with_actor(service: LLMConfigService, local: str) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="alice")
    service.config.set_global(
        "reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o-mini", temperature=0.1), actor="bob"
    )
    service.config.set_global("planning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="carol")

    history = service.config.history("reasoning")
    assert [(v.version, v.actor, v.entry.model_name) for v in history] == [
        (2, "bob", "gpt-4o-mini"),
        (1, "alice", "gpt-4o"),
    ]
    assert history[0].at >= history[1].at


def test_rollback_restores_exactly_the_earlier_fields_as_a_new_version(service: LLMConfigService, local: str) -> None:
    first = service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id=local,
            model_name="gpt-4o",
            temperature=0.7,
            max_tokens=512,
            extra_params={"top_p": 0.9},
            fallbacks=[FallbackTarget(provider_id=local, model_name="gpt-4o-mini")],
        ),
        actor="alice",
    )
    service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id=local, model_name="local-chat", temperature=0.0, max_tokens=None, extra_params={}, fallbacks=[]
        ),
        actor="bob",
    )

    restored = service.config.rollback("reasoning", 1, actor="carol")

    fields = ("provider_id", "model_name", "temperature", "max_tokens", "extra_params", "fallbacks")
    assert {f: getattr(restored, f) for f in fields} == {f: getattr(first, f) for f in fields}
    assert restored.version == 3 and restored.updated_by == "carol"
    assert service.config.history("reasoning")[0].action == "config.rollback"
    assert service.get_llm("reasoning").labels == ["local/gpt-4o", "local/gpt-4o-mini"]


def test_rollback_of_an_unknown_version_is_not_found(service: LLMConfigService, local: str) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    with pytest.raises(NotFoundError, match="no version 7"):
        service.config.rollback("reasoning", 7)


def test_rollback_to_a_model_the_provider_no_longer_offers_is_refused(
    service: LLMConfigService, local: str, openai_peer: OpenAIPeer
) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="local-chat"), actor="a")
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    openai_peer.models = ["gpt-4o"]
    service.providers.validate("local")
    with pytest.raises(ValidationError, match="does not offer model 'local-chat'"):
        service.config.rollback("reasoning", 1)
    assert service.config.get_entry("reasoning").version == 2


def test_user_override_history_and_rollback(service: LLMConfigService, local: str) -> None:
    service.config.set_override("u-1", "tools", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    service.config.set_override("u-1", "tools", ConfigUpdate(provider_id=local, model_name="gpt-4o-mini"), actor="b")
    assert [v.version for v in service.config.history("tools", "u-1")] == [2, 1]
    restored = service.config.rollback("tools", 1, user_id="u-1", actor="c")
    assert restored.model_name == "gpt-4o" and restored.source == "user" and restored.version == 3
    assert service.config.history("tools") == []
