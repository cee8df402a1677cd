"""Global configuration, user overrides, summary and validation, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate, FallbackTarget
from llmconfig.errors import ConflictError, LLMConfigError, NotFoundError, ValidationError
from llmconfig.providers import ProviderCreate, ProviderUpdate
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer


@pytest.fixture
def local(service: LLMConfigService, openai_peer: OpenAIPeer) -> str:
    provider, _ = service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    return provider.id


def test_set_creates_then_updates_with_versions_and_actor(service: LLMConfigService, local: str) -> None:
    created = service.config.set_global(
        "reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o", temperature=0.7), actor="alice"
    )
    assert (created.provider_name, created.model_name, created.temperature) == ("local", "gpt-4o", 0.7)
    assert created.version == 1 and created.updated_by == "alice" and created.kind == "chat"

    # Fields left out keep their value; the provider may be named instead of given by id.
    updated = service.config.set_global(
        "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini", max_tokens=256, version=1), actor="bob"
    )
    assert (updated.model_name, updated.temperature, updated.max_tokens) == ("gpt-4o-mini", 0.7, 256)
    assert updated.version == 2 and updated.updated_by == "bob"
    assert service.config.get_global()["reasoning"] == updated


def test_the_entry_a_write_returns_is_the_entry_as_stored(
    service: LLMConfigService, local: str, openai_peer: OpenAIPeer
) -> None:
    """The answer of a write is built without reading the row back: it must be what a later read finds."""
    other, _ = service.providers.add(
        ProviderCreate(
            name="other", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    created = service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    assert created == service.config.get_entry("reasoning")
    moved = service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id="other",
            model_name="gpt-4o-mini",
            fallbacks=[FallbackTarget(provider_id=local, model_name="gpt-4o")],
        ),
        actor="b",
    )
    assert (moved.provider_id, moved.provider_name, moved.version) == (other.id, "other", 2)
    assert moved == service.config.get_entry("reasoning")
    override = service.config.set_override(
        "u-1", "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="c"
    )
    again = service.config.set_override(
        "u-1", "reasoning", ConfigUpdate(provider_id=other.id, model_name="gpt-4o"), actor="c"
    )
    assert (override.provider_name, again.provider_name, again.version) == ("local", "other", 2)
    assert again == service.config.overrides("u-1")["reasoning"]


def test_stale_version_is_rejected_with_conflict(service: LLMConfigService, local: str) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o-mini"), actor="b")
    with pytest.raises(ConflictError, match="version 1, it is now at 2"):
        service.config.set_global(
            "reasoning", ConfigUpdate(provider_id=local, model_name="local-chat", version=1), actor="a"
        )
    assert service.config.get_entry("reasoning").model_name == "gpt-4o-mini"


def test_unknown_interaction_type_is_not_found(service: LLMConfigService, local: str) -> None:
    with pytest.raises(NotFoundError, match="Unknown interaction type 'thinking'.*reasoning"):
        service.config.set_global("thinking", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")


def test_model_outside_a_non_empty_catalog_is_rejected(service: LLMConfigService, local: str) -> None:
    with pytest.raises(ValidationError, match="does not offer model 'gpt-5'.*gpt-4o"):
        service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-5"), actor="a")
    assert service.config.get_global() == {}


def test_model_of_the_wrong_kind_is_rejected(service: LLMConfigService, local: str) -> None:
    with pytest.raises(
        ValidationError, match="listed as a model of kind 'embeddings', but this interaction type takes chat models"
    ):
        service.config.set_global(
            "reasoning", ConfigUpdate(provider_id=local, model_name="text-embedding-3-small"), actor="a"
        )
    with pytest.raises(
        ValidationError, match="listed as a model of kind 'chat', but this interaction type takes embeddings models"
    ):
        service.config.set_global("embeddings", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")


def test_anthropic_cannot_serve_embeddings(service: LLMConfigService, anthropic_peer: AnthropicPeer) -> None:
    service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        )
    )
    with pytest.raises(ValidationError, match="no embeddings API"):
        service.config.set_global(
            "embeddings", ConfigUpdate(provider_id="claude", model_name="claude-haiku-4-5"), actor="a"
        )


def test_any_model_is_accepted_while_the_catalog_is_empty(service: LLMConfigService) -> None:
    provider, _ = service.providers.add(
        ProviderCreate(name="later", provider_type="custom", api_base_url="http://127.0.0.1:9/v1"), validate=False
    )
    entry = service.config.set_global("reasoning", ConfigUpdate(provider_id="later", model_name="anything"), actor="a")
    assert entry.provider_id == provider.id


def test_unknown_or_disabled_provider_is_rejected(service: LLMConfigService, local: str) -> None:
    with pytest.raises(ValidationError, match="'ghost' does not exist"):
        service.config.set_global("reasoning", ConfigUpdate(provider_id="ghost", model_name="gpt-4o"), actor="a")
    service.providers.update("local", ProviderUpdate(enabled=False))
    with pytest.raises(ValidationError, match="disabled"):
        service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"max_tokens": 0},
        {"extra_params": {"api_key": "sk-smuggled"}},
        {"extra_params": {"default_headers": {"Authorization": "Bearer x"}}},
        {"extra_params": {"model": "other"}},
        {"unknown_field": 1},
    ],
)
def test_invalid_fields_are_rejected_by_the_schema(fields: dict[str, object]) -> None:
    with pytest.raises(PydanticValidationError):
        ConfigUpdate.model_validate({"provider_id": "p", "model_name": "m", **fields})


def test_fallbacks_are_checked_and_stored_by_id(service: LLMConfigService, local: str) -> None:
    entry = service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id=local,
            model_name="gpt-4o",
            fallbacks=[FallbackTarget(provider_id="local", model_name="gpt-4o-mini")],
        ),
        actor="a",
    )
    assert entry.fallbacks == [FallbackTarget(provider_id=local, model_name="gpt-4o-mini")]
    with pytest.raises(ValidationError, match="does not offer"):
        service.config.set_global(
            "reasoning",
            ConfigUpdate(
                provider_id=local, model_name="gpt-4o", fallbacks=[FallbackTarget(provider_id=local, model_name="x")]
            ),
            actor="a",
        )


def test_user_override_wins_and_clearing_it_restores_global(service: LLMConfigService, local: str) -> None:
    service.config.set_global("tools", ConfigUpdate(provider_id=local, model_name="gpt-4o-mini"), actor="a")
    override = service.config.set_override(
        "u-42", "tools", ConfigUpdate(provider_id=local, model_name="gpt-4o", temperature=0.0), actor="a"
    )
    assert override.source == "user" and override.version == 1

    mine, _ = service.resolver.resolve("tools", "u-42")
    theirs, _ = service.resolver.resolve("tools", "u-7")
    assert mine is not None and mine.source == "user" and mine.target.model_name == "gpt-4o"
    assert theirs is not None and theirs.source == "global" and theirs.target.model_name == "gpt-4o-mini"

    service.config.clear_override("u-42", "tools")
    again, _ = service.resolver.resolve("tools", "u-42")
    assert again is not None and again.source == "global"
    with pytest.raises(NotFoundError):
        service.config.clear_override("u-42", "tools")


def test_every_change_moves_the_revision(service: LLMConfigService, local: str) -> None:
    seen = [service.resolver.revision()]
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    seen.append(service.resolver.revision())
    service.providers.update("local", ProviderUpdate(api_key=SecretStr("sk-rotated-key-000000000")))
    seen.append(service.resolver.revision())
    service.config.set_override("u", "reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    seen.append(service.resolver.revision())
    assert seen == sorted(set(seen)), seen


def test_resolution_of_a_disabled_provider_says_so(service: LLMConfigService, local: str) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    service.providers.update("local", ProviderUpdate(enabled=False))
    with pytest.raises(LLMConfigError, match="disabled"):
        service.resolver.resolve("reasoning")


def test_summary_has_one_line_per_type(service: LLMConfigService, local: str) -> None:
    service.config.set_global(
        "reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o", temperature=0.7, max_tokens=100), actor="a"
    )
    lines = service.config.summary().splitlines()
    assert lines[0] == "reasoning: local / gpt-4o (temperature 0.7, max tokens 100)"
    assert [line.split(":")[0] for line in lines] == ["reasoning", "tools", "subagents", "planning", "embeddings"]
    assert lines[1] == "tools: not configured"


def test_validate_reports_each_type(service: LLMConfigService, local: str) -> None:
    down, _ = service.providers.add(
        ProviderCreate(name="down", provider_type="custom", api_base_url=f"http://127.0.0.1:{free_tcp_port()}/v1"),
        validate=False,
    )
    service.config.set_global("reasoning", ConfigUpdate(provider_id=local, model_name="gpt-4o"), actor="a")
    service.config.set_global("tools", ConfigUpdate(provider_id=down.id, model_name="whatever"), actor="a")

    validation = service.config.validate()
    assert not validation.ok
    assert validation.results["reasoning"].ok
    assert validation.results["tools"].status == "unreachable"
    assert set(validation.results) == {"reasoning", "tools"}
