"""The checks every entry (global, group or user) passes before it is stored, and the public shape of a row.

An entry is checked against the database as it is inside the writing transaction: its provider (and every
fallback's and variant's provider) must exist and be enabled, can serve the interaction type's kind, and
offers the model when its catalog is known. A variant that fails a check is named in the error.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmconfig.config.schemas import ConfigEntry, ConfigSource, ConfigUpdate, FallbackTarget, VariantUpdate
from llmconfig.db.models import GlobalConfig, GroupConfig, Provider, UserConfig
from llmconfig.errors import ConflictError, ValidationError
from llmconfig.providers.lookup import usable_provider

EntryRow = GlobalConfig | UserConfig | GroupConfig
DEFAULT_WEIGHT = 100


def provider_names(session: Session) -> dict[str, str]:
    """Every provider's name by id (to show the names of variants' providers)."""
    return {provider_id: name for provider_id, name in session.execute(select(Provider.id, Provider.name))}


def to_entry(row: EntryRow, kind: str, *, source: ConfigSource, names: dict[str, str]) -> ConfigEntry:
    """The public shape of a stored entry; ``names`` maps provider ids to names."""
    return ConfigEntry.model_validate(
        {
            "interaction_type": row.interaction_type,
            "kind": kind,
            "provider_id": row.provider_id,
            "provider_name": row.provider.name,
            "model_name": row.model_name,
            "temperature": row.temperature,
            "max_tokens": row.max_tokens,
            "extra_params": row.extra_params or {},
            "fallbacks": row.fallbacks or [],
            "weight": row.weight or DEFAULT_WEIGHT,
            "variants": [
                {**variant, "provider_name": names.get(variant["provider_id"], variant["provider_id"])}
                for variant in row.variants or []
            ],
            "version": row.version,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
            "source": source,
        }
    )


def update_of(entry: ConfigEntry) -> ConfigUpdate:
    """The update that writes ``entry``'s settings again (a rollback to it)."""
    return ConfigUpdate(
        provider_id=entry.provider_id,
        model_name=entry.model_name,
        temperature=entry.temperature,
        max_tokens=entry.max_tokens,
        extra_params=entry.extra_params,
        fallbacks=entry.fallbacks,
        weight=entry.weight,
        variants=[
            VariantUpdate.model_validate(variant.model_dump(exclude={"provider_name"})) for variant in entry.variants
        ],
    )


def check_version(what: str, row: EntryRow | None, version: int | None) -> None:
    """ConflictError unless ``version`` (when given) is the row's current one (0 for none)."""
    if version is None:
        return
    current = row.version if row is not None else 0
    if version != current:
        raise ConflictError.stale(what, version, current)


def checked_values(
    session: Session, kind: str, update: ConfigUpdate, *, current: EntryRow | None
) -> tuple[dict[str, Any], Provider]:
    """The column values ``update`` stores, every provider and model checked (fields left out keep
    ``current``'s), and the entry's provider."""
    known = current.provider if current is not None else None
    provider = usable_provider(session, update.provider_id, kind, update.model_name, known=known)
    given = update.model_fields_set
    values: dict[str, Any] = {
        "provider_id": provider.id,
        "model_name": update.model_name,
        "temperature": _pick("temperature", update, current, given),
        "max_tokens": _pick("max_tokens", update, current, given),
        "extra_params": _pick("extra_params", update, current, given) or {},
        "weight": _pick("weight", update, current, given) or DEFAULT_WEIGHT,
    }
    if "fallbacks" not in given and current is not None:
        values["fallbacks"] = current.fallbacks
    else:
        values["fallbacks"] = _checked_fallbacks(session, kind, update.fallbacks or [], known=provider)
    if "variants" not in given and current is not None:
        values["variants"] = current.variants or []
    else:
        values["variants"] = [_checked_variant(session, kind, variant) for variant in update.variants or []]
    return values, provider


def _checked_fallbacks(
    session: Session, kind: str, fallbacks: list[FallbackTarget], *, known: Provider | None = None
) -> list[dict[str, str]]:
    checked: list[dict[str, str]] = []
    for fallback in fallbacks:
        target = usable_provider(session, fallback.provider_id, kind, fallback.model_name, known=known)
        checked.append(FallbackTarget(provider_id=target.id, model_name=fallback.model_name).model_dump())
    return checked


def _checked_variant(session: Session, kind: str, variant: VariantUpdate) -> dict[str, Any]:
    try:
        provider = usable_provider(session, variant.provider_id, kind, variant.model_name)
        fallbacks = None if variant.fallbacks is None else _checked_fallbacks(session, kind, variant.fallbacks)
    except ValidationError as exc:
        raise ValidationError(f"Variant {variant.name!r}: {exc}") from None
    return {
        "name": variant.name,
        "provider_id": provider.id,
        "model_name": variant.model_name,
        "temperature": variant.temperature,
        "max_tokens": variant.max_tokens,
        "extra_params": variant.extra_params,
        "fallbacks": fallbacks,
        "weight": variant.weight,
    }


def _pick(name: str, update: ConfigUpdate, current: EntryRow | None, given: set[str]) -> Any:
    if name in given or current is None:
        return getattr(update, name)
    return getattr(current, name)
