"""The statements of :class:`~llmconfig.config.resolution.Resolver`, built once at import.

Building a statement costs about as much as running it on SQLite, and these run on every cache miss of
``get_llm``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
)

from llmconfig.db.models import (
    Budget,
    ConfigRevision,
    GlobalConfig,
    GroupConfig,
    GroupMember,
    InteractionType,
    Provider,
    ProviderKey,
    UserConfig,
    UTCDateTime,
)

PROVIDER_COLUMNS = (
    Provider.id,
    Provider.name,
    Provider.provider_type,
    Provider.version,
    Provider.api_base_url,
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
        *PROVIDER_COLUMNS,
    )


# The revision counter, the type's kind and its global entry with that entry's provider, in one row. The
# entry's columns are NULL when nothing is configured globally; no row means no such interaction type.


def _resolve_global(dialect: str) -> Select[Any]:
    """The global statement for ``dialect``, with the keys of the entry's provider and the budgets of the type
    and that provider as JSON arrays: for a call without a user id to an entry without fallbacks or variants
    (the most common call), that is everything, in one round trip."""
    aggregate, array = (
        (func.json_agg, func.json_build_array) if dialect == "postgresql" else (func.json_group_array, func.json_array)
    )
    # SQLite would embed the stored JSON text as a string: json() makes it JSON again.
    on_exceed = Budget.on_exceed if dialect == "postgresql" else func.json(Budget.on_exceed)
    keys = (
        select(
            aggregate(
                array(ProviderKey.created_at, ProviderKey.id, ProviderKey.secret_ref, ProviderKey.hint), type_=JSON
            )
        )
        .where(ProviderKey.provider_id == Provider.id)
        .correlate(Provider)
        .scalar_subquery()
        .label("keys_json")
    )
    budgets = (
        select(aggregate(array(Budget.scope, on_exceed), type_=JSON))
        .where(Budget.scope.in_([literal("type:") + InteractionType.name, literal("provider:") + Provider.id]))
        .correlate(InteractionType, Provider)
        .scalar_subquery()
        .label("budgets_json")
    )
    return (
        select(ConfigRevision.revision, InteractionType.kind, *_entry_columns(GlobalConfig), keys, budgets)
        .select_from(InteractionType)
        .join(ConfigRevision, ConfigRevision.id == 1)
        .outerjoin(GlobalConfig, GlobalConfig.interaction_type == InteractionType.name)
        .outerjoin(Provider, Provider.id == GlobalConfig.provider_id)
        .where(InteractionType.name == bindparam("interaction_type"))
    )


RESOLVE_GLOBAL = {dialect: _resolve_global(dialect) for dialect in ("postgresql", "sqlite")}
# What may win over the global entry for one user, in order: the user's override (rank 0, no group), then one
# row per group the user is in (rank 1 + its position), with that group's entry or NULLs when it has none for
# this type; so the user's groups come with it even when no group configures the type.
RESOLVE_USER = union_all(
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
PROVIDERS = select(*PROVIDER_COLUMNS).where(
    Provider.id.in_(bindparam("provider_ids", expanding=True)), Provider.enabled.is_(True)
)


PROVIDER_KEYS = (
    select(ProviderKey.provider_id, ProviderKey.id, ProviderKey.secret_ref, ProviderKey.hint)
    .where(ProviderKey.provider_id.in_(bindparam("provider_ids", expanding=True)))
    .order_by(ProviderKey.created_at, ProviderKey.id)
)
# The keys of a resolution's providers and the budgets of its scopes, in one round trip: the keys in each
# provider's order (rows without a scope), then the budgets (rows with one).
KEYS_AND_BUDGETS = union_all(
    select(
        ProviderKey.provider_id,
        ProviderKey.id.label("key_id"),
        ProviderKey.secret_ref,
        ProviderKey.hint,
        ProviderKey.created_at,
        cast(null(), String(300)).label("scope"),
        cast(null(), JSON).label("on_exceed"),
    ).where(ProviderKey.provider_id.in_(bindparam("provider_ids", expanding=True))),
    select(
        cast(null(), String(36)),
        cast(null(), String(36)),
        cast(null(), Text),
        cast(null(), String(8)),
        cast(null(), UTCDateTime()),
        Budget.scope,
        Budget.on_exceed,
    ).where(Budget.scope.in_(bindparam("scopes", expanding=True))),
).order_by(literal_column("scope"), literal_column("created_at"), literal_column("key_id"))
