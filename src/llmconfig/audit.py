"""The audit trail: every change, recorded in the same transaction as the change itself.

Snapshots are the public shapes of the changed objects (``ProviderPublic``, ``ConfigEntry`` …), which have
no field that can hold a key, so the trail cannot leak one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.engine import transaction
from llmconfig.db.models import AuditEntry


class AuditRecord(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def snapshot(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    before: BaseModel | None = None,
    after: BaseModel | None = None,
) -> None:
    """Add one entry to the trail; call inside the transaction that makes the change."""
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=snapshot(before),
            after=snapshot(after),
        )
    )


class AuditService:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def entries(self, *, limit: int = 50, before: int | None = None) -> list[AuditRecord]:
        """Newest first; pass the smallest ``id`` seen as ``before`` to get the next page."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        with transaction(self._sessions) as session:
            return [AuditRecord.model_validate(row, from_attributes=True) for row in session.scalars(query)]
