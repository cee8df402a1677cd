"""Which budgets are spent right now: read from the usage table, kept in memory, checked on every call.

A call asks :meth:`SpendState.spent` for each scope that applies to it (a dictionary lookup each). The
figures are read again at most every ``LLMCONFIG_BUDGET_REFRESH`` seconds, on a background thread, so that
no call waits for the database. Usage reaches the table within the recorder's flush interval (half a second),
from every process and replica, so a budget spent anywhere is known here within about the refresh interval
plus that: well under five seconds with the defaults.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.engine import transaction
from llmconfig.db.models import Budget, UsageRecord
from llmconfig.errors import BudgetExceededError, ConfigUnavailableError
from llmconfig.usage.budgets import is_exceeded, members_of, parse_scope, period_start

log = logging.getLogger("llmconfig.usage")


@dataclass(frozen=True, slots=True)
class SpentBudget:
    """A budget that is spent: what it allowed and what was spent in its current period."""

    scope: str
    period: str
    limit_usd: float | None
    limit_tokens: int | None
    spent_usd: float
    spent_tokens: int

    def describe(self) -> str:
        limits = []
        if self.limit_usd is not None:
            limits.append(f"${self.spent_usd:.4f} of ${self.limit_usd:g}")
        if self.limit_tokens is not None:
            limits.append(f"{self.spent_tokens} of {self.limit_tokens} tokens")
        every = {"hour": "hourly", "day": "daily", "month": "monthly"}.get(self.period, self.period)
        return f"the {every} budget of {self.scope} is spent ({', '.join(limits)})"


class SpendState(Protocol):
    """What the budget check on every call asks."""

    def spent(self, scope: str) -> SpentBudget | None:
        """The budget of ``scope`` if it is spent, else None (also when ``scope`` has no budget)."""
        ...


_COLUMNS = {"type": UsageRecord.interaction_type, "user": UsageRecord.user_id, "provider": UsageRecord.provider_id}


class SpendMeter:
    """Spend against every budget, from the usage table; see the module docstring. Thread-safe.

    ``on_change(scope)`` is called when a budget becomes spent or is no longer spent (a new period began,
    its limit was raised), so that whoever relays that state elsewhere can do so at once.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        refresh: float = 2.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._refresh = refresh
        self._on_change = on_change
        self._spent: dict[str, SpentBudget] = {}
        self._read_at = float("-inf")
        self._reading = threading.Lock()
        self._loaded = threading.Event()

    def spent(self, scope: str) -> SpentBudget | None:
        if time.monotonic() - self._read_at > self._refresh:
            self._refresh_soon()
        return self._spent.get(scope)

    def all_spent(self) -> list[SpentBudget]:
        """Every budget that is spent now (for client-mode processes, which ask the server)."""
        if time.monotonic() - self._read_at > self._refresh:
            self._refresh_soon()
        return sorted(self._spent.values(), key=lambda spent: spent.scope)

    def read(self) -> None:
        """Read every budget's spend now, in this thread (raises ConfigUnavailableError)."""
        with self._reading:
            spent = self._read()
            previous, self._spent = self._spent, spent
            self._read_at = time.monotonic()
            self._loaded.set()
        if self._on_change is not None:
            for scope in sorted(set(previous) ^ set(spent)):
                self._on_change(scope)

    def _refresh_soon(self) -> None:
        if not self._loaded.is_set():
            # The first check of this process: answer it from the database rather than from nothing.
            try:
                self.read()
            except ConfigUnavailableError as exc:
                log.warning("Cannot read the spend of the budgets (%s); calls are not held back meanwhile", exc)
                self._read_at = time.monotonic()
            return
        if self._reading.locked():
            return
        self._read_at = time.monotonic()  # one refresh at a time, whoever asks
        threading.Thread(target=self._refresh_in_background, name="llmconfig-spend", daemon=True).start()

    def _refresh_in_background(self) -> None:
        try:
            self.read()
        except ConfigUnavailableError as exc:
            log.warning("Cannot read the spend of the budgets (%s); using the last figures", exc)
        except Exception:  # a failed refresh must never take calls down
            log.exception("Reading the spend of the budgets failed; using the last figures")

    def _read(self) -> dict[str, SpentBudget]:
        with transaction(self._sessions) as session:
            budgets = session.scalars(select(Budget)).all()
            # One query per (scope kind, period): the spend of every such budget, grouped by the column.
            wanted: dict[tuple[str, str], list[Budget]] = defaultdict(list)
            for budget in budgets:
                wanted[(parse_scope(budget.scope)[0], budget.period)].append(budget)
            spent: dict[str, SpentBudget] = {}
            for (kind, period), group in wanted.items():
                since = period_start(period)
                figures = self._figures(session, kind, since, group)
                for budget in group:
                    usd, tokens = figures.get(budget.scope, (0.0, 0))
                    if is_exceeded(budget, usd, tokens):
                        spent[budget.scope] = SpentBudget(
                            budget.scope, budget.period, budget.limit_usd, budget.limit_tokens, usd, tokens
                        )
            return spent

    @staticmethod
    def _figures(session: Session, kind: str, since: object, budgets: list[Budget]) -> dict[str, tuple[float, int]]:
        cost = func.coalesce(func.sum(UsageRecord.cost_usd), 0.0)
        tokens = func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
        if kind == "group":
            figures = {}
            for budget in budgets:
                members = members_of(session, budget.scope)
                usd, used = session.execute(
                    select(cost, tokens).where(UsageRecord.at >= since, UsageRecord.user_id.in_(members))
                ).one()
                figures[budget.scope] = (float(usd or 0.0), int(used or 0))
            return figures
        column = _COLUMNS[kind]
        names = {parse_scope(budget.scope)[1]: budget.scope for budget in budgets}
        rows = session.execute(
            select(column, cost, tokens).where(UsageRecord.at >= since, column.in_(list(names))).group_by(column)
        )
        return {names[name]: (float(usd or 0.0), int(used or 0)) for name, usd, used in rows if name in names}


class BudgetGate:
    """The budget check before every call: which members of a chain may answer it, or BudgetExceededError.

    ``rules`` pairs each applicable budget's scope (most specific first) with the index of the member its
    ``on_exceed`` model is, or None when a spent budget makes calls fail.
    """

    def __init__(self, spend: SpendState, rules: Sequence[tuple[str, int | None]]) -> None:
        self._spend = spend
        self._rules = tuple(rules)

    def route(self) -> int | None:
        """None while no budget is spent; else the member to use instead, or BudgetExceededError."""
        for scope, index in self._rules:
            spent = self._spend.spent(scope)
            if spent is not None:
                if index is None:
                    raise BudgetExceededError(
                        f"{spent.describe()[0].upper()}{spent.describe()[1:]}; no call was made. Raise the budget "
                        f"(PUT /api/v1/llm/budgets/{scope}) or give it an on_exceed model",
                        scope=scope,
                    )
                return index
        return None
