"""A resolution with its keys: what the server hands to client-mode processes and the OpenAI-compatible face.

:class:`ResolvedConfig` is the body of ``GET /api/v1/llm/resolve/{interaction_type}`` (DESIGN §9). It carries
decrypted provider keys, so it only ever goes to ``client`` and ``admin`` tokens, and never into a log.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from llmconfig.config.checks import DEFAULT_WEIGHT
from llmconfig.config.resolution import (
    BudgetRule,
    Resolution,
    Target,
    VariantResolution,
    budgets_calling,
    freeze_params,
)
from llmconfig.config.schemas import SOURCE_PATTERN, ConfigSource
from llmconfig.config.variants import MAIN, choose
from llmconfig.errors import NotConfiguredError
from llmconfig.llm.building import KeyLookup
from llmconfig.providers.catalog import ModelKind
from llmconfig.providers.keys import ApiKey, KeyRef


class ResolvedKey(BaseModel):
    """One key of a target's provider: its id (what its rest is kept by), its hint, and the key."""

    key_id: str
    hint: str | None
    api_key: str

    def __repr__(self) -> str:  # never the key
        return f"ResolvedKey({self.key_id}, hint={self.hint!r})"

    __str__ = __repr__


class ResolvedTarget(BaseModel):
    """One (provider, model) to call, with the keys to call it with (``api_key``: the first of them)."""

    provider_id: str
    provider_name: str
    provider_type: str
    # Changes whenever the provider (its URL or key) does: client processes key their objects by it.
    provider_version: int = 0
    base_url: str
    model_name: str
    api_key: str | None
    # Every key of the provider, the first one (``api_key``) first: calls take them in turn.
    api_keys: list[ResolvedKey] = []

    def pool_keys(self) -> tuple[ApiKey, ...]:
        """The keys as a key pool takes them (the first one alone for a payload without ``api_keys``)."""
        if self.api_keys:
            return tuple(ApiKey(key.key_id, key.hint, key.api_key) for key in self.api_keys)
        if self.api_key is None:
            return ()
        return (ApiKey(f"{self.provider_id}:{self.provider_version}", None, self.api_key),)

    def __repr__(self) -> str:  # never the key, even in a traceback or a debugger
        return f"ResolvedTarget({self.provider_name}/{self.model_name} at {self.base_url})"

    __str__ = __repr__


class ResolvedVariant(BaseModel):
    """Another variant of the entry, with its share of the traffic; ``targets`` is empty while its provider is
    disabled (its users get the entry's own model meanwhile)."""

    name: str
    weight: int
    temperature: float | None
    max_tokens: int | None
    extra_params: dict[str, Any]
    targets: list[ResolvedTarget]


class ResolvedBudget(BaseModel):
    """A budget that applies: its scope, and the model calls go to once it is spent (None: they fail)."""

    scope: str
    on_exceed: ResolvedTarget | None = None


class ResolvedConfig(BaseModel):
    """What one interaction type resolves to for one user; the first target is the primary.

    The top-level fields are the entry's own model (the variant named ``main``, with ``weight``); ``variants``
    are the others. :meth:`pick` narrows it to the variant of one call, the way the library does, so that
    every path sends a user to the same variant. ``groups`` are the user's groups (what a change to a group
    can affect); ``variant`` names the variant of a narrowed configuration.
    """

    interaction_type: str
    kind: ModelKind
    revision: int
    source: ConfigSource = Field(pattern=SOURCE_PATTERN)
    temperature: float | None
    max_tokens: int | None
    extra_params: dict[str, Any]
    targets: list[ResolvedTarget]
    weight: int = DEFAULT_WEIGHT
    variant: str | None = None
    variants: list[ResolvedVariant] = []
    groups: list[str] = []
    # Most specific first; whether each is spent is asked of GET /spend (it changes without a new revision).
    budgets: list[ResolvedBudget] = []

    @property
    def variant_weights(self) -> list[tuple[str, int]]:
        """``(name, weight)`` of every variant in layout order, ``main`` first."""
        return [(MAIN, self.weight), *((variant.name, variant.weight) for variant in self.variants)]

    def pick(self, user_id: str | None) -> ResolvedConfig:
        """The configuration of the variant ``user_id`` gets (always the same one), or of a variant drawn by
        weight for a call without a user id; itself when the entry has no variants."""
        if not self.variants:
            return self
        name = choose(self, user_id)
        chosen = next((v for v in self.variants if v.name == name and v.targets), None)
        if chosen is None:
            return self.model_copy(
                update={
                    "weight": DEFAULT_WEIGHT,
                    "variants": [],
                    "variant": MAIN,
                    "budgets": self._budgets_of(self.targets),
                }
            )
        return self.model_copy(
            update={
                "temperature": chosen.temperature,
                "max_tokens": chosen.max_tokens,
                "extra_params": chosen.extra_params,
                "targets": chosen.targets,
                "weight": DEFAULT_WEIGHT,
                "variants": [],
                "variant": chosen.name,
                "budgets": self._budgets_of(chosen.targets),
            }
        )

    def _budgets_of(self, targets: list[ResolvedTarget]) -> list[ResolvedBudget]:
        return budgets_calling(self.budgets, targets)

    @classmethod
    def of(cls, resolution: Resolution, revision: int, api_keys: KeyLookup) -> ResolvedConfig:
        def resolved(target: Target) -> ResolvedTarget:
            keys = api_keys(target)
            return ResolvedTarget(
                **_shared_fields(target),
                api_key=keys[0].value if keys else None,
                api_keys=[ResolvedKey(key_id=k.key_id, hint=k.hint, api_key=k.value) for k in keys],
            )

        return cls(
            interaction_type=resolution.interaction_type,
            kind=resolution.kind,
            revision=revision,
            source=resolution.source,
            temperature=resolution.temperature,
            max_tokens=resolution.max_tokens,
            extra_params=resolution.extra_params,
            targets=[resolved(target) for target in resolution.targets],
            weight=resolution.weight,
            variant=resolution.variant,
            variants=[
                ResolvedVariant(
                    name=variant.name,
                    weight=variant.weight,
                    temperature=variant.temperature,
                    max_tokens=variant.max_tokens,
                    extra_params=json.loads(variant.extra_params_json),
                    targets=[
                        resolved(target)
                        for target in ((variant.target, *variant.fallbacks) if variant.target is not None else ())
                    ],
                )
                for variant in resolution.variants
            ],
            groups=list(resolution.groups),
            budgets=[
                ResolvedBudget(scope=rule.scope, on_exceed=None if rule.on_exceed is None else resolved(rule.on_exceed))
                for rule in resolution.budgets
            ],
        )

    def resolution(self) -> Resolution:
        """The plain resolution (keys left out: each key's reference names it and its provider version)."""
        main = tuple(_target(t) for t in self.targets)
        return Resolution(
            interaction_type=self.interaction_type,
            kind=self.kind,
            source=self.source,
            target=main[0],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            extra_params_json=freeze_params(self.extra_params),
            fallbacks=main[1:],
            weight=self.weight,
            variants=tuple(
                VariantResolution(
                    name=variant.name,
                    weight=variant.weight,
                    target=chain[0] if chain else None,
                    temperature=variant.temperature,
                    max_tokens=variant.max_tokens,
                    extra_params_json=freeze_params(variant.extra_params),
                    fallbacks=chain[1:],
                )
                for variant in self.variants
                for chain in [tuple(_target(t) for t in variant.targets)]
            ),
            variant=self.variant,
            groups=tuple(self.groups),
            budgets=tuple(
                BudgetRule(b.scope, None if b.on_exceed is None else _target(b.on_exceed)) for b in self.budgets
            ),
        )

    def all_targets(self) -> list[ResolvedTarget]:
        """Every target whose keys this payload carries: the chain, the variants', then the budgets' models."""
        return [
            *self.targets,
            *(target for variant in self.variants for target in variant.targets),
            *(b.on_exceed for b in self.budgets if b.on_exceed is not None),
        ]


# What a Target and a ResolvedTarget say alike: all but the keys, which each carries its own way.
_SHARED_TARGET_FIELDS = ("provider_id", "provider_name", "provider_type", "provider_version", "base_url", "model_name")


def _shared_fields(target: Target | ResolvedTarget) -> dict[str, Any]:
    return {name: getattr(target, name) for name in _SHARED_TARGET_FIELDS}


def _target(target: ResolvedTarget) -> Target:
    return Target(
        **_shared_fields(target),
        api_keys=tuple(
            KeyRef(key.key_id, server_key_ref(target.provider_id, target.provider_version, key.key_id), key.hint)
            for key in target.pool_keys()
        ),
    )


def server_key_ref(provider_id: str, provider_version: int, key_id: str) -> str:
    """How a client process refers to a key the server handed it (kept in memory by its source)."""
    return f"server:{provider_id}:{provider_version}:{key_id}"


class ResolvedBuilder:
    """The server's materialiser: resolutions become :class:`ResolvedConfig` payloads, keys decrypted once."""

    def __init__(self, api_keys: KeyLookup) -> None:
        self._api_keys = api_keys

    def build(self, resolution: Resolution) -> ResolvedConfig:
        # The revision is filled in when the payload is served (see LLMConfigService.resolve).
        return ResolvedConfig.of(resolution, 0, self._api_keys)

    def tracked(self, built: Any, resolution: Resolution, user_id: str | None) -> Any:
        # Users who resolve alike share one payload; each gets their own groups on it.
        return built.model_copy(update={"groups": list(resolution.groups)}) if resolution.groups else built

    def from_environment(
        self, interaction_type: str, kind: ModelKind | None, *, reason: str, unreachable: bool = False
    ) -> Any:
        raise NotConfiguredError(
            f"Nothing to resolve for {interaction_type!r}: {reason}. Configure it with `llmconfig config set "
            f"{interaction_type} --provider NAME --model MODEL` (or the web panel)"
        )
