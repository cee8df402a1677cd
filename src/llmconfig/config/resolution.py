"""What a ``get_llm`` call resolves to, and the resolver that reads it from the database.

A :class:`Resolution` holds plain, hashable values, so it can key the object cache. It holds everything an
object is built from except the decrypted key: the key is identified by its secret reference and the
provider's version (which changes whenever the key does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Integer, String, and_, bindparam, cast, literal_column, null, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.config.checks import DEFAULT_WEIGHT
from llmconfig.config.schemas import ConfigSource, storable_user_id
from llmconfig.config.types import find_interaction_type
from llmconfig.config.variants import MAIN
from llmconfig.db.changes import read_revision
from llmconfig.db.engine import reading, transaction
from llmconfig.db.models import (
    ConfigRevision,
    GlobalConfig,
    GroupConfig,
    GroupMember,
    InteractionType,
    Provider,
    UserConfig,
)
from llmconfig.errors import LLMConfigError
from llmconfig.providers.adapters import adapter_for
from llmconfig.providers.catalog import ModelKind


@dataclass(frozen=True, slots=True)
class Target:
    """One (provider, model) pair, with what is needed to call it."""

    provider_id: str
    provider_name: str
    provider_type: str
    provider_version: int
    base_url: str
    api_key_ref: str | None
    model_name: str


@dataclass(frozen=True, slots=True)
class VariantResolution:
    """One variant of an entry, resolved: parameters it does not set are the entry's own.

    ``target`` is None when the variant's provider is disabled: the users it would get are served by the
    entry's own model (``main``) meanwhile, and nobody else moves.
    """

    name: str
    weight: int
    target: Target | None
    temperature: float | None
    max_tokens: int | None
    extra_params_json: str
    fallbacks: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an interaction type resolves to for a request.

    ``variants`` are the entry's other variants (its own model is ``main``, with ``weight``); a resolution
    narrowed to one of them (:meth:`narrow`) has none and names it in ``variant``. ``groups`` are the user's
    groups when it was read, for the caches to know which changes affect it; it does not take part in
    equality, so users in different groups who resolve alike still share one built object.
    """

    interaction_type: str
    kind: ModelKind
    source: ConfigSource
    target: Target
    temperature: float | None
    max_tokens: int | None
    extra_params_json: str
    fallbacks: tuple[Target, ...] = ()
    weight: int = DEFAULT_WEIGHT
    variants: tuple[VariantResolution, ...] = ()
    variant: str | None = None
    groups: tuple[str, ...] = field(default=(), compare=False)

    @property
    def extra_params(self) -> dict[str, Any]:
        params: dict[str, Any] = json.loads(self.extra_params_json)
        return params

    @property
    def targets(self) -> tuple[Target, ...]:
        """The primary target, then the fallback chain in order (of the entry's own model, ``main``)."""
        return (self.target, *self.fallbacks)

    @property
    def variant_weights(self) -> tuple[tuple[str, int], ...]:
        """``(name, weight)`` of every variant in layout order, ``main`` first (see llmconfig.config.variants)."""
        return ((MAIN, self.weight), *((variant.name, variant.weight) for variant in self.variants))

    @property
    def provider_ids(self) -> frozenset[str]:
        """Every provider this resolution may call: of every variant, with their fallbacks."""
        ids = {target.provider_id for target in self.targets}
        for variant in self.variants:
            ids.update(target.provider_id for target in (*filter(None, [variant.target]), *variant.fallbacks))
        return frozenset(ids)

    def narrow(self, name: str) -> Resolution:
        """The resolution of variant ``name`` alone (``variant`` set, no variants); itself without variants.

        An unknown name, and a variant whose provider is disabled, narrow to ``main``.
        """
        if not self.variants:
            return self
        chosen = next((v for v in self.variants if v.name == name and v.target is not None), None)
        if chosen is None or chosen.target is None:
            return replace(self, weight=DEFAULT_WEIGHT, variants=(), variant=MAIN)
        return Resolution(
            interaction_type=self.interaction_type,
            kind=self.kind,
            source=self.source,
            target=chosen.target,
            temperature=chosen.temperature,
            max_tokens=chosen.max_tokens,
            extra_params_json=chosen.extra_params_json,
            fallbacks=chosen.fallbacks,
            variant=chosen.name,
            groups=self.groups,
        )


def freeze_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


_PROVIDER_COLUMNS = (
    Provider.id,
    Provider.name,
    Provider.provider_type,
    Provider.version,
    Provider.api_base_url,
    Provider.api_key_ref,
    Provider.enabled,
)


def _entry_columns(table: type[GlobalConfig] | type[UserConfig] | type[GroupConfig]) -> tuple[Any, ...]:
    """An entry's settings followed by its provider's columns."""
    return (
        table.model_name,
        table.temperature,
        table.max_tokens,
        table.extra_params,
        table.fallbacks,
        table.weight,
        table.variants,
        *_PROVIDER_COLUMNS,
    )


# The statements of ``Resolver.resolve``, built once: building a statement costs about as much as running it
# on SQLite, and these run on every cache miss of ``get_llm``.

# The revision counter, the type's kind and its global entry with that entry's provider, in one row. The
# entry's columns are NULL when nothing is configured globally; no row means no such interaction type.
_RESOLVE_GLOBAL = (
    select(ConfigRevision.revision, InteractionType.kind, *_entry_columns(GlobalConfig))
    .select_from(InteractionType)
    .join(ConfigRevision, ConfigRevision.id == 1)
    .outerjoin(GlobalConfig, GlobalConfig.interaction_type == InteractionType.name)
    .outerjoin(Provider, Provider.id == GlobalConfig.provider_id)
    .where(InteractionType.name == bindparam("interaction_type"))
)
# What may win over the global entry for one user, in order: the user's override (rank 0, no group), then one
# row per group the user is in (rank 1 + its position), with that group's entry or NULLs when it has none for
# this type; so the user's groups come with it even when no group configures the type.
_RESOLVE_USER = union_all(
    select(literal_column("0", Integer).label("rank"), cast(null(), String(64)).label("group_name"))
    .add_columns(*_entry_columns(UserConfig))
    .select_from(UserConfig)
    .join(Provider, Provider.id == UserConfig.provider_id)
    .where(UserConfig.user_id == bindparam("user_id"), UserConfig.interaction_type == bindparam("interaction_type")),
    select((GroupMember.position + 1).label("rank"), GroupMember.group_name)
    .add_columns(*_entry_columns(GroupConfig))
    .select_from(GroupMember)
    .outerjoin(
        GroupConfig,
        and_(
            GroupConfig.group_name == GroupMember.group_name,
            GroupConfig.interaction_type == bindparam("interaction_type"),
        ),
    )
    .outerjoin(Provider, Provider.id == GroupConfig.provider_id)
    .where(GroupMember.user_id == bindparam("user_id")),
).order_by(literal_column("rank"))
_PROVIDERS = select(*_PROVIDER_COLUMNS).where(
    Provider.id.in_(bindparam("provider_ids", expanding=True)), Provider.enabled.is_(True)
)


def _target(provider: Any, model_name: str) -> Target:
    """A Target from anything with the provider's attributes (an ORM row or a Core row)."""
    return Target(
        provider_id=provider.id,
        provider_name=provider.name,
        provider_type=provider.provider_type,
        provider_version=provider.version,
        base_url=provider.api_base_url or adapter_for(provider.provider_type).normalise_base_url(None),
        api_key_ref=provider.api_key_ref,
        model_name=model_name,
    )


def _chain(fallbacks: list[dict[str, str]], providers: dict[str, Any]) -> tuple[Target, ...]:
    """The fallback chain's targets whose providers are enabled (the others are skipped)."""
    return tuple(
        _target(providers[f["provider_id"]], f["model_name"]) for f in fallbacks if f["provider_id"] in providers
    )


def _own(value: Any, inherited: Any) -> Any:
    return inherited if value is None else value


class Resolver:
    """Reads the configuration in force for a request: the user's override, else the first of the user's groups
    with an entry, else the global entry."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def revision(self) -> int:
        """The revision counter (one indexed read): it changes whenever anything that is served may have."""
        with reading(self._sessions) as connection:
            return read_revision(connection)

    def resolve(self, interaction_type: str, user_id: str | None = None) -> tuple[Resolution | None, int]:
        """The configuration in force for a request (user override, the user's groups in order, then global),
        and the revision read.

        Returns ``(None, revision)`` when the type exists but nothing is configured for it. This is the
        cold path of ``get_llm``: one statement without a user id, two with one (one more when fallbacks or
        variants use other providers), prepared at import and run on a plain connection.
        """
        with reading(self._sessions) as connection:
            head = connection.execute(_RESOLVE_GLOBAL, {"interaction_type": interaction_type}).first()
            if head is None:
                with transaction(self._sessions) as session:
                    find_interaction_type(session, interaction_type)  # raises NotFoundError, naming the known types
                    return None, read_revision(session)
            row: Any = None
            source: ConfigSource = "global"
            groups: tuple[str, ...] = ()
            # No override or membership can be stored for an id the database refuses (PostgreSQL rejects NUL):
            # such a user simply follows the global entry, rather than failing the agent's call.
            if user_id is not None and storable_user_id(user_id):
                layers = connection.execute(
                    _RESOLVE_USER, {"user_id": user_id, "interaction_type": interaction_type}
                ).all()
                groups = tuple(layer.group_name for layer in layers if layer.group_name is not None)
                row = next((layer for layer in layers if layer.model_name is not None), None)
                if row is not None:
                    source = "user" if row.group_name is None else f"group:{row.group_name}"
            if row is None:
                row = head if head.model_name is not None else None
            if row is None:
                return None, head.revision
            if not row.enabled:
                raise LLMConfigError(
                    f"{interaction_type!r} uses provider {row.name!r}, which is disabled; "
                    "enable it or configure another provider"
                )
            return self._resolution(connection, interaction_type, head.kind, source, row, groups), head.revision

    @staticmethod
    def _resolution(
        connection: Connection, interaction_type: str, kind: ModelKind, source: str, row: Any, groups: tuple[str, ...]
    ) -> Resolution:
        """The resolution of the winning entry ``row``; one more statement when its fallbacks or variants use
        other providers than its own."""
        fallbacks: list[dict[str, str]] = row.fallbacks or []
        variants: list[dict[str, Any]] = row.variants or []
        wanted = {f["provider_id"] for f in fallbacks}
        for variant in variants:
            wanted.add(variant["provider_id"])
            wanted.update(f["provider_id"] for f in variant.get("fallbacks") or [])
        providers: dict[str, Any] = {row.id: row}
        wanted.discard(row.id)
        if wanted:
            providers.update((p.id, p) for p in connection.execute(_PROVIDERS, {"provider_ids": sorted(wanted)}))
        extra_params = row.extra_params or {}
        return Resolution(
            interaction_type=interaction_type,
            kind=kind,
            source=source,
            target=_target(row, row.model_name),
            temperature=row.temperature,
            max_tokens=row.max_tokens,
            extra_params_json=freeze_params(extra_params),
            fallbacks=_chain(fallbacks, providers),
            weight=row.weight or DEFAULT_WEIGHT,
            variants=tuple(
                VariantResolution(
                    name=variant["name"],
                    weight=variant["weight"],
                    target=(
                        _target(providers[variant["provider_id"]], variant["model_name"])
                        if variant["provider_id"] in providers
                        else None
                    ),
                    temperature=_own(variant.get("temperature"), row.temperature),
                    max_tokens=_own(variant.get("max_tokens"), row.max_tokens),
                    extra_params_json=freeze_params(_own(variant.get("extra_params"), extra_params)),
                    fallbacks=_chain(_own(variant.get("fallbacks"), fallbacks), providers),
                )
                for variant in variants
            ),
            groups=groups,
        )
