"""What a ``get_llm`` call resolves to, and the resolver that reads it from the database.

A :class:`Resolution` holds plain, hashable values, so it can key the object cache. It holds everything an
object is built from except the decrypted keys: each key is identified by its id and secret reference, and
the provider's version changes whenever its keys do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    Connection,
)
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.config.checks import DEFAULT_WEIGHT
from llmconfig.config.schemas import ConfigSource, storable_user_id
from llmconfig.config.statements import KEYS_AND_BUDGETS, PROVIDER_KEYS, PROVIDERS, RESOLVE_GLOBAL, RESOLVE_USER
from llmconfig.config.types import find_interaction_type
from llmconfig.config.variants import MAIN
from llmconfig.db.changes import read_revision
from llmconfig.db.engine import reading, transaction
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
class BudgetRule:
    """A budget that applies to a resolution: its scope, and the model to use once it is spent (None: fail)."""

    scope: str
    on_exceed: Target | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an interaction type resolves to for a request.

    ``variants`` are the entry's other variants (its own model is ``main``, with ``weight``); a resolution
    narrowed to one of them (:meth:`narrow`) has none and names it in ``variant``. ``groups`` are the user's
    groups when it was read, for the caches to know which changes affect it; it does not take part in
    equality, so users in different groups who resolve alike still share one built object. ``budgets`` are
    those that apply, most specific first.
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
    budgets: tuple[BudgetRule, ...] = ()

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

    @property
    def exceed_targets(self) -> tuple[Target, ...]:
        """The distinct models the budgets send calls to once spent, in the order of the budgets."""
        seen: list[Target] = []
        for rule in self.budgets:
            if rule.on_exceed is not None and rule.on_exceed not in seen:
                seen.append(rule.on_exceed)
        return tuple(seen)

    def narrow(self, name: str) -> Resolution:
        """The resolution of variant ``name`` alone (``variant`` set, no variants); itself without variants.

        An unknown name, and a variant whose provider is disabled, narrow to ``main``. The budgets of
        providers only other variants call are left out.
        """
        if not self.variants:
            return self
        chosen = next((v for v in self.variants if v.name == name and v.target is not None), None)
        if chosen is None or chosen.target is None:
            main = self.targets
            return replace(self, weight=DEFAULT_WEIGHT, variants=(), variant=MAIN, budgets=self._budgets_of(main))
        chain = (chosen.target, *chosen.fallbacks)
        return replace(
            self,
            target=chosen.target,
            temperature=chosen.temperature,
            max_tokens=chosen.max_tokens,
            extra_params_json=chosen.extra_params_json,
            fallbacks=chosen.fallbacks,
            weight=DEFAULT_WEIGHT,
            variants=(),
            variant=chosen.name,
            budgets=self._budgets_of(chain),
        )

    def _budgets_of(self, chain: tuple[Target, ...]) -> tuple[BudgetRule, ...]:
        return tuple(budgets_calling(self.budgets, chain))


class Scoped(Protocol):
    @property
    def scope(self) -> str: ...


ScopedT = TypeVar("ScopedT", bound=Scoped)


def budgets_calling(budgets: Iterable[ScopedT], targets: Iterable[Any]) -> list[ScopedT]:
    """The budgets that apply to calls of ``targets`` (anything with a ``provider_id``): every budget but those of
    providers that only other variants call."""
    called = {f"provider:{target.provider_id}" for target in targets}
    return [budget for budget in budgets if not budget.scope.startswith("provider:") or budget.scope in called]


def budget_scopes(
    interaction_type: str, user_id: str | None, provider_ids: Iterable[str], groups: Iterable[str] = ()
) -> list[str]:
    """The scopes of the budgets that may apply to a call, most specific first: the user, the user's groups in
    order, the interaction type, the providers."""
    scopes = [f"user:{user_id}"] if user_id is not None else []
    scopes.extend(f"group:{group}" for group in groups)
    scopes.append(f"type:{interaction_type}")
    scopes.extend(dict.fromkeys(f"provider:{provider_id}" for provider_id in provider_ids))
    return scopes


def freeze_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


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


def _keys_of(connection: Any, provider_ids: Iterable[str]) -> dict[str, tuple[KeyRef, ...]]:
    """The keys of these providers, each provider's first key first."""
    keys: dict[str, list[KeyRef]] = {}
    for row in connection.execute(PROVIDER_KEYS, {"provider_ids": sorted(provider_ids)}):
        keys.setdefault(row.provider_id, []).append(KeyRef(row.id, row.secret_ref, row.hint))
    return {provider_id: tuple(refs) for provider_id, refs in keys.items()}


def _chain(
    fallbacks: list[dict[str, str]], providers: dict[str, Any], keys: dict[str, tuple[KeyRef, ...]]
) -> tuple[Target, ...]:
    """The fallback chain's targets whose providers are enabled (the others are skipped)."""
    return tuple(
        _target(providers[f["provider_id"]], f["model_name"], keys) for f in fallbacks if f["provider_id"] in providers
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
        cold path of ``get_llm``: two statements without a user id (the entry; the providers' keys with the
        budgets), three with one (one more when fallbacks or variants use other providers), prepared at import
        and run on a plain connection.
        """
        with reading(self._sessions) as connection:
            head = connection.execute(
                RESOLVE_GLOBAL[connection.dialect.name], {"interaction_type": interaction_type}
            ).first()
            if head is None:
                with transaction(self._sessions) as session:
                    find_interaction_type(session, interaction_type)  # raises NotFoundError, naming the known types
                    return None, read_revision(session)
            row: Any = None
            source: ConfigSource = "global"
            groups: tuple[str, ...] = ()
            # No override, membership or budget can be stored for an id the database refuses (PostgreSQL rejects NUL):
            # such a user simply follows the global entry, rather than failing the agent's call.
            if user_id is not None and not storable_user_id(user_id):
                user_id = None
            if user_id is not None:
                layers = connection.execute(
                    RESOLVE_USER, {"user_id": user_id, "interaction_type": interaction_type}
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
            # Without a user, the global entry alone calls its own provider: the first statement read the rest.
            alone = row is head and user_id is None and not row.fallbacks and not row.variants
            extras = _extras_of(head) if alone else None
            resolution = self._resolution(
                connection, interaction_type, head.kind, source, row, groups, user_id, extras=extras
            )
            return resolution, head.revision

    @staticmethod
    def _resolution(
        connection: Connection,
        interaction_type: str,
        kind: ModelKind,
        source: ConfigSource,
        row: Any,
        groups: tuple[str, ...],
        user_id: str | None,
        *,
        extras: tuple[dict[str, list[KeyRef]], dict[str, Any]] | None = None,
    ) -> Resolution:
        """The resolution of the winning entry ``row``: one statement for the providers' keys and the budgets,
        one more when its fallbacks or variants use other providers than its own."""
        fallbacks: list[dict[str, str]] = row.fallbacks or []
        variants: list[dict[str, Any]] = row.variants or []
        wanted = {f["provider_id"] for f in fallbacks}
        for variant in variants:
            wanted.add(variant["provider_id"])
            wanted.update(f["provider_id"] for f in variant.get("fallbacks") or [])
        providers: dict[str, Any] = {row.id: row}
        wanted.discard(row.id)
        if wanted:
            providers.update((p.id, p) for p in connection.execute(PROVIDERS, {"provider_ids": sorted(wanted)}))
        scopes = budget_scopes(interaction_type, user_id, sorted(providers), groups)
        keys: dict[str, list[KeyRef]] = {}
        budgets: dict[str, Any] = {}
        if extras is not None:
            keys, budgets = extras
        else:
            parameters = {"provider_ids": sorted(providers), "scopes": scopes}
            for extra in connection.execute(KEYS_AND_BUDGETS, parameters):
                if extra.scope is None:
                    keys.setdefault(extra.provider_id, []).append(KeyRef(extra.key_id, extra.secret_ref, extra.hint))
                else:
                    budgets[extra.scope] = extra.on_exceed
        key_refs = {provider_id: tuple(refs) for provider_id, refs in keys.items()}
        extra_params = row.extra_params or {}
        resolution = Resolution(
            interaction_type=interaction_type,
            kind=kind,
            source=source,
            target=_target(row, row.model_name, key_refs),
            temperature=row.temperature,
            max_tokens=row.max_tokens,
            extra_params_json=freeze_params(extra_params),
            fallbacks=_chain(fallbacks, providers, key_refs),
            weight=row.weight or DEFAULT_WEIGHT,
            variants=tuple(
                VariantResolution(
                    name=variant["name"],
                    weight=variant["weight"],
                    target=(
                        _target(providers[variant["provider_id"]], variant["model_name"], key_refs)
                        if variant["provider_id"] in providers
                        else None
                    ),
                    temperature=_own(variant.get("temperature"), row.temperature),
                    max_tokens=_own(variant.get("max_tokens"), row.max_tokens),
                    extra_params_json=freeze_params(_own(variant.get("extra_params"), extra_params)),
                    fallbacks=_chain(_own(variant.get("fallbacks"), fallbacks), providers, key_refs),
                )
                for variant in variants
            ),
            groups=groups,
        )
        if not budgets:
            return resolution
        return replace(resolution, budgets=_budget_rules(connection, scopes, budgets))


def _extras_of(head: Any) -> tuple[dict[str, list[KeyRef]], dict[str, Any]]:
    """The keys of the global entry's provider and the budgets of its type and provider, from the JSON arrays
    of the global statement (``[created_at, id, secret_ref, hint]`` and ``[scope, on_exceed]``)."""
    stored = sorted((tuple(key) for key in _json(head.keys_json) or ()), key=lambda key: (str(key[0]), key[1]))
    keys = {head.id: [KeyRef(key_id, secret_ref, hint) for _, key_id, secret_ref, hint in stored]} if stored else {}
    budgets = {scope: _json(on_exceed) for scope, on_exceed in _json(head.budgets_json) or ()}
    return keys, budgets


def _json(value: Any) -> Any:
    # A driver may hand JSON over as text (SQLite does for values built in a query).
    return json.loads(value) if isinstance(value, str) else value


def _budget_rules(connection: Any, scopes: list[str], rows: dict[str, Any]) -> tuple[BudgetRule, ...]:
    """The budgets found for a resolution (``rows``: scope → on_exceed), most specific first, with their
    models (one more statement when some budget names one)."""
    wanted = [on_exceed["provider_id"] for on_exceed in rows.values() if on_exceed]
    providers = {p.id: p for p in connection.execute(PROVIDERS, {"provider_ids": wanted})} if wanted else {}
    keys = _keys_of(connection, providers) if providers else {}
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
