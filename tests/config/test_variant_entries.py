"""Entries with weighted variants: what is stored, what is refused (naming the variant), how they resolve."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError

from llmconfig import LLMConfigService
from llmconfig.config import MAIN, ConfigUpdate
from llmconfig.errors import ConflictError, ValidationError
from llmconfig.providers import ProviderCreate, ProviderUpdate
from llmconfig.validation import invalid_input
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer


@pytest.fixture
def local(service: LLMConfigService, openai_peer: OpenAIPeer) -> str:
    provider, _ = service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    return provider.id


@pytest.fixture
def claude(service: LLMConfigService, anthropic_peer: AnthropicPeer) -> str:
    provider, _ = service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        )
    )
    return provider.id


def with_variants(*variants: dict[str, Any], **fields: Any) -> ConfigUpdate:
    return ConfigUpdate.model_validate(
        {"provider_id": "local", "model_name": "gpt-4o", "temperature": 0.7, **fields, "variants": list(variants)}
    )


def variant(name: str, weight: Any = 50, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider_id": "local", "model_name": "gpt-4o-mini", "weight": weight, **fields}


def test_variants_are_stored_with_their_weights_and_inherit_what_they_leave_out(
    service: LLMConfigService, local: str, claude: str
) -> None:
    stored = service.config.set_global(
        "reasoning",
        with_variants(
            variant("mini", 30),
            variant("claude", 20, provider_id="claude", model_name="claude-haiku-4-5", temperature=0.2, fallbacks=[]),
            weight=50,
            fallbacks=[{"provider_id": "local", "model_name": "local-chat"}],
            max_tokens=512,
        ),
        actor="t",
    )
    assert stored.variant_weights == [(MAIN, 50), ("mini", 30), ("claude", 20)]
    assert [(v.name, v.provider_name, v.temperature) for v in stored.variants] == [
        ("mini", "local", None),
        ("claude", "claude", 0.2),
    ]
    assert service.config.get_entry("reasoning") == stored

    resolution, _ = service.resolver.resolve("reasoning")
    assert resolution is not None and resolution.variant_weights == ((MAIN, 50), ("mini", 30), ("claude", 20))
    mini = resolution.narrow("mini")
    # Left out: the entry's own temperature, max tokens and fallback chain.
    assert (mini.variant, mini.target.model_name, mini.temperature, mini.max_tokens) == (
        "mini",
        "gpt-4o-mini",
        0.7,
        512,
    )
    assert [t.model_name for t in mini.fallbacks] == ["local-chat"]
    anthropic = resolution.narrow("claude")
    assert (anthropic.target.provider_type, anthropic.temperature, anthropic.fallbacks) == ("anthropic", 0.2, ())
    own = resolution.narrow(MAIN)
    assert (own.variant, own.target.model_name, own.variants) == (MAIN, "gpt-4o", ())

    # A change that leaves the variants out keeps them; an empty list removes them.
    kept = service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    assert [v.name for v in kept.variants] == ["mini", "claude"] and kept.weight == 50
    cleared = service.config.set_global("reasoning", with_variants(), actor="t")
    assert cleared.variants == []
    assert "variants by weight" not in service.config.summary()


def test_history_and_rollback_bring_the_variants_back(service: LLMConfigService, local: str) -> None:
    service.config.set_global("reasoning", with_variants(variant("mini", 40), weight=60), actor="t")
    service.config.set_global("reasoning", with_variants(), actor="t")
    restored = service.config.rollback("reasoning", 1, actor="t")
    assert (restored.version, restored.variant_weights) == (3, [(MAIN, 60), ("mini", 40)])
    assert "reasoning: local / gpt-4o (temperature 0.7, variants by weight: main 60, mini 40)" in (
        service.config.summary()
    )


@pytest.mark.parametrize(
    ("variants", "fields", "named"),
    [
        ([variant("canary", 0)], {}, "variant 'canary': the weight must be a whole number from 1"),
        ([variant("canary", -5)], {}, "variant 'canary': the weight must be a whole number"),
        ([variant("canary", 12.5)], {}, "variant 'canary': the weight must be a whole number from 1 to 1,000,000, "),
        ([variant("canary", True)], {}, "variant 'canary': the weight must be a whole number"),
        ([variant("canary", "50")], {}, "variant 'canary': the weight must be a whole number"),
        ([variant("canary")], {"weight": 0}, "variant 'main' (the entry's own model): the weight"),
        ([variant("main")], {}, "variant 'main': the name 'main' is reserved"),
        ([variant("twin"), variant("twin")], {}, "variant 'twin' is listed twice"),
        ([variant("bad name")], {}, "variant 'bad name': a variant name is"),
        ([variant("hot", temperature=3)], {}, "variant 'hot': temperature: Input should be less than or equal to 2"),
        ([variant("leak", extra_params={"api_key": "sk-x"})], {}, "variant 'leak': extra_params: extra_params may"),
        ([{"name": "nameless-weight", "provider_id": "local", "model_name": "m"}], {}, "variant 'nameless-weight'"),
    ],
)
def test_bad_variants_are_refused_naming_the_variant(
    variants: list[dict[str, Any]], fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(PydanticValidationError) as refused:
        with_variants(*variants, **fields)
    assert named in invalid_input(refused.value)


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (variant("emb", model_name="text-embedding-3-small"), "Variant 'emb': 'text-embedding-3-small' is listed as"),
        (variant("ghost", model_name="gpt-9"), "Variant 'ghost': Provider 'local' does not offer model 'gpt-9'"),
        (variant("nowhere", provider_id="nowhere"), "Variant 'nowhere': Provider 'nowhere' does not exist"),
        (
            variant("fb", fallbacks=[{"provider_id": "local", "model_name": "gpt-9"}]),
            "Variant 'fb': Provider 'local' does not offer model 'gpt-9'",
        ),
    ],
)
def test_a_variant_of_the_wrong_kind_or_outside_the_catalog_is_refused_and_nothing_is_stored(
    service: LLMConfigService, local: str, bad: dict[str, Any], named: str
) -> None:
    service.config.set_global("reasoning", with_variants(variant("fine", 10)), actor="t")
    with pytest.raises(ValidationError) as refused:
        service.config.set_global("reasoning", with_variants(variant("fine", 10), bad), actor="t")
    assert named in str(refused.value)
    entry = service.config.get_entry("reasoning")
    assert (entry.version, [v.name for v in entry.variants]) == (1, ["fine"])


def test_an_anthropic_variant_of_an_embeddings_type_is_refused(
    service: LLMConfigService, local: str, claude: str
) -> None:
    update = ConfigUpdate.model_validate(
        {
            "provider_id": "local",
            "model_name": "text-embedding-3-small",
            "variants": [variant("claude", provider_id="claude", model_name="claude-haiku-4-5")],
        }
    )
    with pytest.raises(ValidationError, match="Variant 'claude': Provider 'claude' is an Anthropic provider"):
        service.config.set_global("embeddings", update, actor="t")


def test_a_variant_whose_provider_is_disabled_sends_its_users_to_main_and_nobody_else_moves(
    service: LLMConfigService, local: str, claude: str
) -> None:
    service.config.set_global(
        "reasoning",
        with_variants(variant("claude", 50, provider_id="claude", model_name="claude-haiku-4-5")),
        actor="t",
    )
    resolution, _ = service.resolver.resolve("reasoning")
    assert resolution is not None
    from llmconfig.config import choose

    users = [f"u-{n}" for n in range(200)]
    before = {user: choose(resolution, user) for user in users}
    service.providers.update("claude", ProviderUpdate(enabled=False))
    disabled, _ = service.resolver.resolve("reasoning")
    assert disabled is not None and disabled.variant_weights == resolution.variant_weights
    for user in users:
        narrowed = disabled.narrow(choose(disabled, user))
        assert narrowed.variant == MAIN and narrowed.target.model_name == "gpt-4o"
        assert choose(disabled, user) == before[user]  # the layout itself did not change
    # A provider a variant uses cannot be removed; the error names the variant.
    with pytest.raises(ConflictError, match="reasoning \\(variant 'claude'\\)"):
        service.providers.remove("claude")
