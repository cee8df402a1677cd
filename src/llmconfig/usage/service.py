"""Usage reports and the price table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from statistics import quantiles
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import ModelPrice, UsageRecord
from llmconfig.errors import ConflictError, NotFoundError

GroupBy = Literal["interaction_type", "model", "provider", "user", "day", "variant", "key"]
# The key of calls without a user, and of calls of entries without variants.
NONE_KEY = "(none)"


class UsageGroup(BaseModel):
    key: str
    keys: list[str]
    calls: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_p50_ms: float
    latency_p95_ms: float
    # Per call, so that groups of different sizes (variants with different weights) compare side by side.
    tokens_per_call: float
    cost_per_call_usd: float


class UsageReport(BaseModel):
    group_by: list[GroupBy]
    since: datetime | None
    until: datetime | None
    groups: list[UsageGroup]


class Price(BaseModel):
    model_name: str
    input_per_million: float
    output_per_million: float
    updated_at: datetime
    version: int


class PriceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(ge=0, le=10_000, description="USD per million input tokens")
    output_per_million: float = Field(ge=0, le=10_000, description="USD per million output tokens")
    version: int | None = None


def _percentile(values: list[float], fraction: float) -> float:
    if len(values) == 1:
        return round(values[0], 2)
    cuts = quantiles(values, n=100, method="inclusive")
    return round(cuts[round(fraction * 100) - 1], 2)


class UsageService:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def report(
        self,
        *,
        group_by: GroupBy | Sequence[GroupBy],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageReport:
        """Calls, errors, tokens, estimated cost and latency percentiles per group, and tokens and cost per call.

        ``group_by`` may name several dimensions (``["day", "interaction_type"]``): one group per combination.
        ``variant`` groups by the variant of the entry that made the call (``main`` for its own model,
        ``(none)`` for entries without variants); with ``interaction_type`` first, it compares each type's
        variants side by side.
        """
        dimensions: list[GroupBy] = [group_by] if isinstance(group_by, str) else list(group_by)
        query = select(UsageRecord)
        if since is not None:
            query = query.where(UsageRecord.at >= since)
        if until is not None:
            query = query.where(UsageRecord.at < until)
        buckets: dict[tuple[str, ...], list[UsageRecord]] = defaultdict(list)
        with transaction(self._sessions) as session:
            for record in session.scalars(query.order_by(UsageRecord.at)):
                buckets[tuple(_key(record, dimension) for dimension in dimensions)].append(record)
        groups = []
        for key, records in sorted(buckets.items()):
            latencies = [r.latency_ms for r in records]
            tokens = sum(r.prompt_tokens + r.completion_tokens for r in records)
            cost = sum(r.cost_usd or 0.0 for r in records)
            groups.append(
                UsageGroup(
                    key=" / ".join(key),
                    keys=list(key),
                    calls=len(records),
                    errors=sum(not r.success for r in records),
                    prompt_tokens=sum(r.prompt_tokens for r in records),
                    completion_tokens=sum(r.completion_tokens for r in records),
                    cost_usd=round(cost, 9),
                    latency_p50_ms=_percentile(latencies, 0.50),
                    latency_p95_ms=_percentile(latencies, 0.95),
                    tokens_per_call=round(tokens / len(records), 2),
                    cost_per_call_usd=round(cost / len(records), 12),
                )
            )
        return UsageReport(group_by=dimensions, since=since, until=until, groups=groups)

    def prices(self) -> list[Price]:
        with transaction(self._sessions) as session:
            rows = session.scalars(select(ModelPrice).order_by(ModelPrice.model_name))
            return [Price.model_validate(row, from_attributes=True) for row in rows]

    def set_price(self, model_name: str, update: PriceUpdate, *, actor: str = "system") -> Price:
        """Create or change a model's price; applies to usage recorded from now on."""
        try:
            with transaction(self._sessions, write=True) as session:
                row = session.get(ModelPrice, model_name)
                current = row.version if row else 0
                if update.version is not None and update.version != current:
                    raise ConflictError.stale(f"the price of {model_name!r}", update.version, current)
                before = Price.model_validate(row, from_attributes=True) if row else None
                if row is None:
                    row = ModelPrice(model_name=model_name)
                    session.add(row)
                row.input_per_million = update.input_per_million
                row.output_per_million = update.output_per_million
                session.flush()
                after = Price.model_validate(row, from_attributes=True)
                record_change(
                    session,
                    Change.price(model_name),
                    actor=actor,
                    action="price.update" if before else "price.create",
                    before=before,
                    after=after,
                )
                return after
        except StaleDataError:
            raise ConflictError.overtaken(f"the price of {model_name!r}") from None

    def delete_price(self, model_name: str, *, actor: str = "system") -> None:
        with transaction(self._sessions, write=True) as session:
            row = session.get(ModelPrice, model_name)
            if row is None:
                raise NotFoundError(f"No price for {model_name!r}")
            record_change(
                session,
                Change.price(model_name),
                actor=actor,
                action="price.delete",
                before=Price.model_validate(row, from_attributes=True),
            )
            session.delete(row)


def _key(record: UsageRecord, group_by: GroupBy) -> str:
    if group_by == "interaction_type":
        return record.interaction_type
    if group_by == "model":
        return record.model_name
    if group_by == "provider":
        return record.provider_name
    if group_by == "user":
        return record.user_id or NONE_KEY
    if group_by == "variant":
        return record.variant or NONE_KEY
    if group_by == "key":  # a provider's key, by its hint
        return f"{record.provider_name} …{record.key_hint}" if record.key_hint else f"{record.provider_name} (no hint)"
    return record.at.date().isoformat()
