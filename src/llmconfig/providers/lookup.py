"""Reading providers for the other services: by id or name, checked for a model, in public form, and what
uses one. Entries, budgets, keys and configuration as code look providers up through these."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from llmconfig.db.models import Budget, GlobalConfig, GroupConfig, Provider, ProviderModel, UserConfig
from llmconfig.errors import NotFoundError, ValidationError
from llmconfig.providers.schemas import ProviderPublic


def to_public(provider: Provider) -> ProviderPublic:
    return ProviderPublic.model_validate(
        {
            "id": provider.id,
            "name": provider.name,
            "provider_type": provider.provider_type,
            "api_base_url": provider.api_base_url,
            "enabled": provider.enabled,
            # The first key stands for the provider's keys where one is shown (see ProviderService.keys).
            "has_api_key": bool(provider.keys),
            "api_key_hint": provider.keys[0].hint if provider.keys else None,
            "validation_status": provider.validation_status,
            "validation_error": provider.validation_error,
            "validated_at": provider.validated_at,
            "created_at": provider.created_at,
            "updated_at": provider.updated_at,
            "version": provider.version,
        }
    )


def find_provider(session: Session, ref: str) -> Provider:
    """A provider by id or by name, or NotFoundError."""
    provider = session.scalar(select(Provider).where(or_(Provider.id == ref, Provider.name == ref)))
    if provider is None:
        raise NotFoundError(f"No provider {ref!r}; list them with `llmconfig providers list`")
    return provider


def usable_provider(
    session: Session, ref: str, kind: str, model_name: str, *, known: Provider | None = None
) -> Provider:
    """The enabled provider ``ref`` (id or name), if it can serve ``model_name`` as a ``kind`` model.

    ``known``: a provider already read in this transaction, used instead of reading it again when it is ``ref``.

    ValidationError saying what to do otherwise: an unknown or disabled provider, Anthropic for embeddings, a
    model missing from a non-empty catalog (listing the models of the right kind) or of the wrong kind.
    """
    try:
        provider = known if known is not None and ref in (known.id, known.name) else find_provider(session, ref)
    except NotFoundError:
        raise ValidationError(
            f"Provider {ref!r} does not exist; add it first or pick one from `llmconfig providers list`"
        ) from None
    if not provider.enabled:
        raise ValidationError(f"Provider {provider.name!r} is disabled; enable it or choose another provider")
    if kind == "embeddings" and provider.provider_type == "anthropic":
        raise ValidationError(
            f"Provider {provider.name!r} is an Anthropic provider, which has no embeddings API; "
            "choose an openai or custom provider"
        )
    catalog = dict(
        session.execute(
            select(ProviderModel.model_name, ProviderModel.kind).where(ProviderModel.provider_id == provider.id)
        ).all()
    )
    if catalog:
        if model_name not in catalog:
            suitable = sorted(name for name, model_kind in catalog.items() if model_kind == kind)
            shown = ", ".join(suitable[:10]) + (" …" if len(suitable) > 10 else "")
            raise ValidationError(
                f"Provider {provider.name!r} does not offer model {model_name!r}; "
                f"its {kind} models are: {shown or 'none'} (refresh with `llmconfig providers models "
                f"{provider.name} --refresh`)"
            )
        if catalog[model_name] != kind:
            raise ValidationError(
                f"{model_name!r} is listed as a model of kind {catalog[model_name]!r}, "
                f"but this interaction type takes {kind} models"
            )
    return provider


def users_of(session: Session, provider_id: str) -> list[str]:
    """What uses the provider: entries (global, group, user; themselves or a variant) and budgets."""

    def uses(entry: GlobalConfig | UserConfig | GroupConfig) -> list[str]:
        """Where the entry uses the provider: itself (its model or fallbacks), or its variants by name."""
        where = []
        if entry.provider_id == provider_id or any(f.get("provider_id") == provider_id for f in entry.fallbacks):
            where.append("")
        for variant in entry.variants or []:
            if variant.get("provider_id") == provider_id or any(
                f.get("provider_id") == provider_id for f in variant.get("fallbacks") or []
            ):
                where.append(f" (variant {variant.get('name')!r})")
        return where

    users: list[str] = []
    for entry in session.scalars(select(GlobalConfig)):
        users += [f"{entry.interaction_type}{variant}" for variant in uses(entry)]
    for group_entry in session.scalars(select(GroupConfig)):
        users += [
            f"{group_entry.interaction_type}{variant} (entry of group {group_entry.group_name})"
            for variant in uses(group_entry)
        ]
    for override in session.scalars(select(UserConfig)):
        users += [
            f"{override.interaction_type}{variant} (override of user {override.user_id})" for variant in uses(override)
        ]
    for budget in session.scalars(select(Budget)):
        if budget.scope == f"provider:{provider_id}" or (budget.on_exceed or {}).get("provider_id") == provider_id:
            users.append(f"the budget of {budget.scope}")
    return users
