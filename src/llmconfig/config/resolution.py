"""What a ``get_llm`` call resolves to, and the resolver that reads it from the database.

A :class:`Resolution` holds plain, hashable values, so it can key the object cache. It holds everything an
object is built from except the decrypted keys: each key is identified by its id and secret reference, and
the provider's version changes whenever its keys do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.config.schemas import ConfigSource, storable_user_id
from llmconfig.config.types import find_interaction_type
from llmconfig.db.changes import read_revision
from llmconfig.db.engine import reading, transaction
from llmconfig.db.models import (
    Budget,
    ConfigRevision,
    GlobalConfig,
    InteractionType,
    Provider,
    ProviderKey,
    UserConfig,
)
from llmconfig.errors import LLMConfigError
from llmconfig.providers.adapters import adapter_for
from llmconfig.providers.catalog import ModelKind
from llmconfig.providers.keys import KeyRef


@dataclass(frozen=True, slots=True)
class Target:
    """One (provider, model) pair, with what is needed to call it."""

    provider_id: str
    provider_name: str
    provider_type: str
    provider_version: int
    base_url: str
    model_name: str
    # The provider's keys, the first one first (empty: the provider has none).
    api_keys: tuple[KeyRef, ...] = ()


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """A budget that applies to a resolution: its scope, and the model to use once it is spent (None: fail)."""

    scope: str
    on_exceed: Target | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    interaction_type: str
    kind: ModelKind
    source: ConfigSource
    target: Target
    temperature: float | None
    max_tokens: int | None
    extra_params_json: str
    fallbacks: tuple[Target, ...] = ()
    budgets: tuple[BudgetRule, ...] = ()

    @property
    def extra_params(self) -> dict[str, Any]:
        params: dict[str, Any] = json.loads(self.extra_params_json)
        return params

    @property
    def targets(self) -> tuple[Target, ...]:
        """The primary target, then the fallback chain in order."""
        return (self.target, *self.fallbacks)

    @property
    def exceed_targets(self) -> tuple[Target, ...]:
        """The distinct models the budgets send calls to once spent, in the order of the budgets."""
        seen: list[Target] = []
        for rule in self.budgets:
            if rule.on_exceed is not None and rule.on_exceed not in seen:
                seen.append(rule.on_exceed)
        return tuple(seen)


def budget_scopes(interaction_type: str, user_id: str | None, provider_ids: Iterable[str]) -> list[str]:
    """The scopes of the budgets that may apply to a call, most specific first."""
    scopes = [f"user:{user_id}"] if user_id is not None else []
    scopes.append(f"type:{interaction_type}")
    scopes.extend(dict.fromkeys(f"provider:{provider_id}" for provider_id in provider_ids))
    return scopes


def freeze_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


_PROVIDER_COLUMNS = (
    Provider.id,
    Provider.name,
    Provider.provider_type,
    Provider.version,
    Provider.api_base_url,
    Provider.enabled,
)


def _entry_columns(table: type[GlobalConfig] | type[UserConfig]) -> tuple[Any, ...]:
    """An entry's settings followed by its provider's columns."""
    return (
        table.model_name,
        table.temperature,
        table.max_tokens,
        table.extra_params,
        table.fallbacks,
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
_RESOLVE_USER = (
    select(*_entry_columns(UserConfig))
    .join(Provider, Provider.id == UserConfig.provider_id)
    .where(UserConfig.user_id == bindparam("user_id"), UserConfig.interaction_type == bindparam("interaction_type"))
)
_FALLBACK_PROVIDERS = select(*_PROVIDER_COLUMNS).where(
    Provider.id.in_(bindparam("provider_ids", expanding=True)), Provider.enabled.is_(True)
)
_BUDGETS = select(Budget.scope, Budget.on_exceed).where(Budget.scope.in_(bindparam("scopes", expanding=True)))
_PROVIDER_KEYS = (
    select(ProviderKey.provider_id, ProviderKey.id, ProviderKey.secret_ref, ProviderKey.hint)
    .where(ProviderKey.provider_id.in_(bindparam("provider_ids", expanding=True)))
    .order_by(ProviderKey.created_at, ProviderKey.id)
)


def _target(provider: Any, model_name: str, keys: dict[str, tuple[KeyRef, ...]] | None = None) -> Target:
    """A Target from anything with the provider's attributes (an ORM row or a Core row), with its keys."""
    return Target(
        provider_id=provider.id,
        provider_name=provider.name,
        provider_type=provider.provider_type,
        provider_version=provider.version,
        base_url=provider.api_base_url or adapter_for(provider.provider_type).normalise_base_url(None),
        model_name=model_name,
        api_keys=(keys or {}).get(provider.id, ()),
    )


def _keys_of(connection: Any, provider_ids: set[str]) -> dict[str, tuple[KeyRef, ...]]:
    """The keys of these providers, each provider's first key first."""
    keys: dict[str, list[KeyRef]] = {}
    for row in connection.execute(_PROVIDER_KEYS, {"provider_ids": sorted(provider_ids)}):
        keys.setdefault(row.provider_id, []).append(KeyRef(row.id, row.secret_ref, row.hint))
    return {provider_id: tuple(refs) for provider_id, refs in keys.items()}


class Resolver:
    """Reads the configuration in force for a request: the user's override, else the global entry."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def revision(self) -> int:
        """The revision counter (one indexed read): it changes whenever anything that is served may have."""
        with reading(self._sessions) as connection:
            return read_revision(connection)

    def resolve(self, interaction_type: str, user_id: str | None = None) -> tuple[Resolution | None, int]:
        """The configuration in force for a request (user override, then global), and the revision read.

        Returns ``(None, revision)`` when the type exists but nothing is configured for it. This is the
        cold path of ``get_llm``: two statements without a user id (the entry, the providers' keys), three with
        one (four with fallbacks), prepared at import and run on a plain connection.
        """
        with reading(self._sessions) as connection:
            head = connection.execute(_RESOLVE_GLOBAL, {"interaction_type": interaction_type}).first()
            if head is None:
                with transaction(self._sessions) as session:
                    find_interaction_type(session, interaction_type)  # raises NotFoundError, naming the known types
                    return None, read_revision(session)
            row: Any = None
            source: ConfigSource = "user"
            # No override or budget can be stored for an id the database refuses (PostgreSQL rejects NUL):
            # such a user simply follows the global entry, rather than failing the agent's call.
            if user_id is not None and not storable_user_id(user_id):
                user_id = None
            if user_id is not None:
                row = connection.execute(
                    _RESOLVE_USER, {"user_id": user_id, "interaction_type": interaction_type}
                ).first()
            if row is None:
                source = "global"
                row = head if head.model_name is not None else None
            if row is None:
                return None, head.revision
            if not row.enabled:
                raise LLMConfigError(
                    f"{interaction_type!r} uses provider {row.name!r}, which is disabled; "
                    "enable it or configure another provider"
                )
            providers: dict[str, Any] = {}
            if row.fallbacks:
                wanted = [f["provider_id"] for f in row.fallbacks]
                providers = {p.id: p for p in connection.execute(_FALLBACK_PROVIDERS, {"provider_ids": wanted})}
            keys = _keys_of(connection, {row.id, *providers})
            fallbacks = [
                _target(providers[f["provider_id"]], f["model_name"], keys)
                for f in row.fallbacks or ()
                if f["provider_id"] in providers
            ]
            target = _target(row, row.model_name, keys)
            resolution = Resolution(
                interaction_type=interaction_type,
                kind=head.kind,
                source=source,
                target=target,
                temperature=row.temperature,
                max_tokens=row.max_tokens,
                extra_params_json=freeze_params(row.extra_params or {}),
                fallbacks=tuple(fallbacks),
                budgets=self._budgets(connection, interaction_type, user_id, (target, *fallbacks)),
            )
            return resolution, head.revision

    @staticmethod
    def _budgets(
        connection: Any, interaction_type: str, user_id: str | None, targets: tuple[Target, ...]
    ) -> tuple[BudgetRule, ...]:
        """The budgets that apply to a call of this resolution, most specific first, with their models."""
        scopes = budget_scopes(interaction_type, user_id, (t.provider_id for t in targets))
        rows = {row.scope: row.on_exceed for row in connection.execute(_BUDGETS, {"scopes": scopes})}
        if not rows:
            return ()
        wanted = [on_exceed["provider_id"] for on_exceed in rows.values() if on_exceed]
        providers = (
            {p.id: p for p in connection.execute(_FALLBACK_PROVIDERS, {"provider_ids": wanted})} if wanted else {}
        )
        keys = _keys_of(connection, set(providers)) if providers else {}
        rules = []
        for scope in scopes:
            if scope not in rows:
                continue
            on_exceed = rows[scope]
            provider = providers.get(on_exceed["provider_id"]) if on_exceed else None
            rules.append(
                BudgetRule(scope, _target(provider, on_exceed["model_name"], keys) if provider and on_exceed else None)
            )
        return tuple(rules)
