"""The first configuration from an OpenAI key: provider ``openai`` and the built-in defaults (``llmconfig seed``).

:func:`seed_defaults` is idempotent. It adds the provider unless one named ``openai`` exists, validates it
(which discovers its models), and gives every interaction type that has no global entry yet its built-in
default (DESIGN §1), as long as the provider offers that model. A type it cannot configure is *skipped*, and
the report says why and what to run instead; a type that already has an entry is *kept* as it is.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, SecretStr

from llmconfig.config.defaults import BUILTIN_DEFAULTS
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.errors import NotFoundError
from llmconfig.providers.catalog import ModelKind
from llmconfig.providers.schemas import ProviderCreate, ProviderPublic, ValidationResult

if TYPE_CHECKING:
    from llmconfig.config.entries import EntryService
    from llmconfig.config.types import InteractionTypeService
    from llmconfig.providers.service import ProviderService

__all__ = ["SEED_PROVIDER", "SeedReport", "SkippedType", "seed_defaults"]

#: The name of the provider the seed adds (and finds again on later runs).
SEED_PROVIDER = "openai"


class SkippedType(BaseModel):
    """An interaction type the seed left unconfigured, why, and the command that would configure it."""

    interaction_type: str
    kind: ModelKind
    # not_offered: the provider's catalog lacks the default model; no_default: a type added by an operator,
    # which has no built-in default to apply.
    reason: Literal["not_offered", "no_default"]
    wanted_model: str | None
    # What the provider offers of the type's kind (chat models for chat types, embeddings models otherwise).
    offered_models: list[str]
    # `llmconfig config set …` with the first offered model, or MODEL when the provider offers none.
    suggested_command: str
    detail: str


class SeedReport(BaseModel):
    """What one run of :func:`seed_defaults` found and did."""

    provider: ProviderPublic
    created: bool
    # Set when the provider was validated on this run: when it was added, or when it was not valid before.
    validation: ValidationResult | None
    configured: list[str]
    kept: list[str]
    skipped: list[SkippedType]


def seed_defaults(
    *,
    providers: ProviderService,
    config: EntryService,
    types: InteractionTypeService,
    api_key: SecretStr,
    base_url: str | None,
    actor: str,
) -> SeedReport:
    """Add provider ``openai`` (``api_key``, ``base_url`` or OpenAI's own) if absent, validate it, apply defaults.

    Safe to run again: an existing provider is kept (its key and URL are not changed), configured types are
    left alone. Raises the providers' and the configuration's own errors for invalid input (such as a
    malformed ``base_url``); a provider that fails validation is still added, and the defaults are applied
    without a catalog to check them against, as ``config set`` would.
    """
    created = False
    validation: ValidationResult | None = None
    try:
        provider = providers.get(SEED_PROVIDER)
    except NotFoundError:
        provider, _ = providers.add(
            ProviderCreate(name=SEED_PROVIDER, provider_type="openai", api_base_url=base_url, api_key=api_key),
            actor=actor,
            validate=False,
        )
        created = True
    if created or provider.validation_status != "ok":
        validation = providers.validate(provider.id)

    catalog = providers.catalog(provider.id)
    offered: dict[str, list[str]] = {}
    for entry in catalog:
        offered.setdefault(entry.kind, []).append(entry.model_name)
    configured_before = config.get_global()
    configured: list[str] = []
    kept: list[str] = []
    skipped: list[SkippedType] = []
    for info in types.list():
        if info.name in configured_before:
            kept.append(info.name)
            continue
        default = BUILTIN_DEFAULTS.get(info.name)
        of_kind = offered.get(info.kind, [])
        if default is None:
            skipped.append(_skipped(info.name, info.kind, None, of_kind))
            continue
        # An empty catalog (validation failed, or discovery found nothing) cannot refute the default.
        if catalog and default.model_name not in {entry.model_name for entry in catalog}:
            skipped.append(_skipped(info.name, info.kind, default.model_name, of_kind))
            continue
        config.set_global(
            info.name,
            ConfigUpdate(provider_id=provider.id, model_name=default.model_name, temperature=default.temperature),
            actor=actor,
        )
        configured.append(info.name)
    return SeedReport(
        provider=providers.get(provider.id),
        created=created,
        validation=validation,
        configured=configured,
        kept=kept,
        skipped=skipped,
    )


def _skipped(interaction_type: str, kind: ModelKind, wanted: str | None, offered: list[str]) -> SkippedType:
    model = offered[0] if offered else "MODEL"
    command = shlex.join(
        ["llmconfig", "config", "set", interaction_type, "--provider", SEED_PROVIDER, "--model", model]
    )
    models = f"{kind} models"
    if wanted is None:
        detail = f"{interaction_type!r} has no built-in default model"
    else:
        detail = f"provider {SEED_PROVIDER!r} does not offer the default model {wanted!r}"
    detail += f"; it offers {models}: {', '.join(offered)}" if offered else f"; it offers no {models}"
    return SkippedType(
        interaction_type=interaction_type,
        kind=kind,
        reason="no_default" if wanted is None else "not_offered",
        wanted_model=wanted,
        offered_models=offered,
        suggested_command=command,
        detail=detail,
    )
