"""A resolution with its keys: what the server hands to client-mode processes and the OpenAI-compatible face.

:class:`ResolvedConfig` is the body of ``GET /api/v1/llm/resolve/{interaction_type}`` (DESIGN §9). It carries
decrypted provider keys, so it only ever goes to ``client`` and ``admin`` tokens, and never into a log.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from llmconfig.config.checks import DEFAULT_WEIGHT
from llmconfig.config.resolution import Resolution, Target, VariantResolution, freeze_params
from llmconfig.config.schemas import SOURCE_PATTERN, ConfigSource
from llmconfig.config.variants import MAIN, choose
from llmconfig.errors import NotConfiguredError
from llmconfig.llm.building import KeyLookup
from llmconfig.providers.catalog import ModelKind


class ResolvedTarget(BaseModel):
    """One (provider, model) to call, with the key to call it with."""

    provider_id: str
    provider_name: str
    provider_type: str
    # Changes whenever the provider (its URL or key) does: client processes key their objects by it.
    provider_version: int = 0
    base_url: str
    model_name: str
    api_key: str | None

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
            return self.model_copy(update={"weight": DEFAULT_WEIGHT, "variants": [], "variant": MAIN})
        return self.model_copy(
            update={
                "temperature": chosen.temperature,
                "max_tokens": chosen.max_tokens,
                "extra_params": chosen.extra_params,
                "targets": chosen.targets,
                "weight": DEFAULT_WEIGHT,
                "variants": [],
                "variant": chosen.name,
            }
        )

    @classmethod
    def of(cls, resolution: Resolution, revision: int, api_key: KeyLookup) -> ResolvedConfig:
        def targets(chain: tuple[Target, ...]) -> list[ResolvedTarget]:
            return [
                ResolvedTarget(
                    provider_id=target.provider_id,
                    provider_name=target.provider_name,
                    provider_type=target.provider_type,
                    provider_version=target.provider_version,
                    base_url=target.base_url,
                    model_name=target.model_name,
                    api_key=api_key(target),
                )
                for target in chain
            ]

        return cls(
            interaction_type=resolution.interaction_type,
            kind=resolution.kind,
            revision=revision,
            source=resolution.source,
            temperature=resolution.temperature,
            max_tokens=resolution.max_tokens,
            extra_params=resolution.extra_params,
            targets=targets(resolution.targets),
            weight=resolution.weight,
            variant=resolution.variant,
            variants=[
                ResolvedVariant(
                    name=variant.name,
                    weight=variant.weight,
                    temperature=variant.temperature,
                    max_tokens=variant.max_tokens,
                    extra_params=json.loads(variant.extra_params_json),
                    targets=targets((variant.target, *variant.fallbacks) if variant.target is not None else ()),
                )
                for variant in resolution.variants
            ],
            groups=list(resolution.groups),
        )

    def resolution(self) -> Resolution:
        """The plain resolution (keys left out: each target's key reference names its provider version)."""
        main = _targets(self.targets)
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
                for chain in [_targets(variant.targets)]
            ),
            variant=self.variant,
            groups=tuple(self.groups),
        )


def _targets(resolved: list[ResolvedTarget]) -> tuple[Target, ...]:
    return tuple(
        Target(
            provider_id=t.provider_id,
            provider_name=t.provider_name,
            provider_type=t.provider_type,
            provider_version=t.provider_version,
            base_url=t.base_url,
            api_key_ref=None if t.api_key is None else f"server:{t.provider_id}:{t.provider_version}",
            model_name=t.model_name,
        )
        for t in resolved
    )


class ResolvedBuilder:
    """The server's materialiser: resolutions become :class:`ResolvedConfig` payloads, keys decrypted once."""

    def __init__(self, api_key: KeyLookup) -> None:
        self._api_key = api_key

    def build(self, resolution: Resolution) -> ResolvedConfig:
        # The revision is filled in when the payload is served (see LLMConfigService.resolve).
        return ResolvedConfig.of(resolution, 0, self._api_key)

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
