"""Budgets: what an interaction type, a user, a group or a provider may spend per hour, day or month.

A budget has a scope (``type:<name>``, ``user:<id>``, ``group:<name>``, ``provider:<id>``), a period (UTC
hours, days or calendar months), a limit in USD and/or in tokens, and what happens once it is spent: calls
fail before reaching the provider (:class:`~llmconfig.errors.BudgetExceededError`), or go to the budget's
``on_exceed`` model. Spend is what the usage table says for the current period, so it counts the calls of
every process and replica; :class:`BudgetMeter` keeps it in memory and reads it again every few seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.config.groups import find_group
from llmconfig.config.schemas import FallbackTarget, check_user_id
from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import Budget, GroupMember, InteractionType, Provider, UsageRecord, utcnow
from llmconfig.errors import ConcurrentChangeError, ConflictError, NotFoundError, ValidationError
from llmconfig.providers.lookup import find_provider, usable_provider

Period = Literal["hour", "day", "month"]
ScopeKind = Literal["type", "user", "group", "provider"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("type", "user", "group", "provider")


class BudgetUpdate(BaseModel):
    """A budget's limits (at least one) and what happens when it is spent."""

    model_config = ConfigDict(extra="forbid")

    period: Period
    limit_usd: float | None = Field(default=None, gt=0, le=1e9, allow_inf_nan=False)
    limit_tokens: int | None = Field(default=None, gt=0, le=10**15)
    on_exceed: FallbackTarget | None = Field(
        default=None, description="The model calls go to once the budget is spent; left out, they fail"
    )
    version: int | None = None


class BudgetInfo(BaseModel):
    """A budget and what has been spent against it in the current period."""

    scope: str
    period: Period
    limit_usd: float | None
    limit_tokens: int | None
    on_exceed: FallbackTarget | None
    spent_usd: float
    spent_tokens: int
    period_start: datetime
    exceeded: bool
    version: int
    updated_at: datetime
    updated_by: str | None


def period_start(period: str, now: datetime | None = None) -> datetime:
    """The start (UTC) of the hour, day or month ``now`` falls in."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if period == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def parse_scope(scope: str) -> tuple[ScopeKind, str]:
    """``(kind, name)`` of a scope, or ValidationError naming the scopes there are."""
    kind, _, name = scope.partition(":")
    for known in SCOPE_KINDS:
        if kind == known and name:
            return known, name
    raise ValidationError(
        f"Unknown budget scope {scope[:80]!r}; use type:<interaction type>, user:<user id>, group:<group> or "
        "provider:<provider id or name>"
    )


def is_exceeded(budget: Budget | BudgetInfo, spent_usd: float, spent_tokens: int) -> bool:
    return (budget.limit_usd is not None and spent_usd >= budget.limit_usd) or (
        budget.limit_tokens is not None and spent_tokens >= budget.limit_tokens
    )


def spend(session: Session, scope: str, since: datetime, *, members: Iterable[str] = ()) -> tuple[float, int]:
    """USD and tokens the usage table holds for ``scope`` since ``since`` (a group's: its members')."""
    kind, name = parse_scope(scope)
    query = select(
        func.coalesce(func.sum(UsageRecord.cost_usd), 0.0),
        func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0),
    ).where(UsageRecord.at >= since)
    if kind == "type":
        query = query.where(UsageRecord.interaction_type == name)
    elif kind == "user":
        query = query.where(UsageRecord.user_id == name)
    elif kind == "provider":
        query = query.where(UsageRecord.provider_id == name)
    else:
        users = list(members)
        if not users:
            return 0.0, 0
        query = query.where(UsageRecord.user_id.in_(users))
    usd, tokens = session.execute(query).one()
    return float(usd or 0.0), int(tokens or 0)


class BudgetService:
    """Sets, lists and removes budgets; each change audited and announced like every other."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def list(self) -> list[BudgetInfo]:
        """Every budget with its spend in the current period, by scope."""
        with transaction(self._sessions) as session:
            rows = session.scalars(select(Budget).order_by(Budget.scope)).all()
            return [self._info(session, row) for row in rows]

    def get(self, scope: str) -> BudgetInfo:
        with transaction(self._sessions) as session:
            return self._info(session, self._row(session, scope))

    def set(self, scope: str, update: BudgetUpdate, *, actor: str = "system") -> BudgetInfo:
        """Create or change the budget of ``scope`` (a provider may be named by id or name)."""
        if update.limit_usd is None and update.limit_tokens is None:
            raise ValidationError("A budget needs a limit: give limit_usd, limit_tokens or both")
        try:
            with transaction(self._sessions, write=True) as session:
                scope = self._checked_scope(session, scope)
                kind = self._kind_of(session, scope)
                on_exceed = None
                if update.on_exceed is not None:
                    provider = usable_provider(session, update.on_exceed.provider_id, kind, update.on_exceed.model_name)
                    on_exceed = {"provider_id": provider.id, "model_name": update.on_exceed.model_name}
                row = session.get(Budget, scope)
                current = row.version if row else 0
                if update.version is not None and update.version != current:
                    raise ConflictError.stale(f"the budget of {scope!r}", update.version, current)
                before = None if row is None else self._info(session, row)
                if row is None:
                    row = Budget(scope=scope)
                    session.add(row)
                row.period = update.period
                row.limit_usd = update.limit_usd
                row.limit_tokens = update.limit_tokens
                row.on_exceed = on_exceed
                if before is not None and not session.is_modified(row):
                    return before
                row.updated_by = actor
                session.flush()
                after = self._info(session, row)
                record_change(
                    session,
                    Change.budget(scope),
                    actor=actor,
                    action="budget.update" if before else "budget.create",
                    before=before,
                    after=after,
                )
                return after
        except (StaleDataError, ConcurrentChangeError):
            raise ConflictError.overtaken(f"the budget of {scope!r}") from None

    def delete(self, scope: str, *, actor: str = "system") -> None:
        with transaction(self._sessions, write=True) as session:
            row = self._row(session, scope)
            record_change(
                session, Change.budget(row.scope), actor=actor, action="budget.delete", before=self._info(session, row)
            )
            session.delete(row)

    # -- internals ---------------------------------------------------------------------------------

    def _row(self, session: Session, scope: str) -> Budget:
        kind, name = parse_scope(scope)
        if kind == "provider":
            with contextlib.suppress(NotFoundError):  # an unknown name is reported below, as an unknown scope
                scope = f"provider:{find_provider(session, name).id}"
        row = session.get(Budget, scope)
        if row is None:
            raise NotFoundError(f"No budget for {scope!r}; list them with GET /budgets")
        return row

    @staticmethod
    def _checked_scope(session: Session, scope: str) -> str:
        """The scope in its stored form (providers by id), or ValidationError saying what is wrong."""
        kind, name = parse_scope(scope)
        if kind == "type":
            if session.get(InteractionType, name) is None:
                known = ", ".join(session.scalars(select(InteractionType.name).order_by(InteractionType.name)))
                raise ValidationError(f"Unknown interaction type {name!r} in the budget's scope; known types: {known}")
        elif kind == "user":
            check_user_id(name)
        elif kind == "group":
            try:
                find_group(session, name)  # a ValidationError for a name no group can have
            except NotFoundError:
                raise ValidationError(
                    f"No group {name!r} for the budget's scope; a group comes into being with its first member "
                    "(PUT /users/{user_id}/groups) or entry (PUT /groups/{group}/config/{interaction_type})"
                ) from None
        else:
            provider = session.scalar(select(Provider).where((Provider.id == name) | (Provider.name == name)))
            if provider is None:
                raise ValidationError(f"No provider {name!r} for the budget's scope; list them with GET /providers")
            name = provider.id
        return f"{kind}:{name}"

    @staticmethod
    def _kind_of(session: Session, scope: str) -> str:
        """The kind of model an on_exceed target must be: the type's for a type budget, chat otherwise."""
        kind, name = parse_scope(scope)
        if kind == "type":
            return session.get(InteractionType, name).kind  # type: ignore[union-attr]  # checked above
        return "chat"

    @staticmethod
    def _info(session: Session, row: Budget) -> BudgetInfo:
        start = period_start(row.period)
        usd, tokens = spend(session, row.scope, start, members=members_of(session, row.scope))
        return BudgetInfo(
            scope=row.scope,
            period=row.period,
            limit_usd=row.limit_usd,
            limit_tokens=row.limit_tokens,
            on_exceed=FallbackTarget.model_validate(row.on_exceed) if row.on_exceed else None,
            spent_usd=round(usd, 9),
            spent_tokens=tokens,
            period_start=start,
            exceeded=is_exceeded(row, usd, tokens),
            version=row.version,
            updated_at=row.updated_at or utcnow(),
            updated_by=row.updated_by,
        )


def members_of(session: Session, scope: str) -> list[str]:
    """The users a ``group:`` scope covers: the group's members now (none for other scopes)."""
    kind, name = parse_scope(scope)
    if kind != "group":
        return []
    return list(session.scalars(select(GroupMember.user_id).where(GroupMember.group_name == name)))
