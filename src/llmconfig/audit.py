"""The audit trail, read back: every change, as :func:`llmconfig.db.changes.record_change` recorded it.

Entries are written in the same transaction as the change itself, so the trail cannot miss a committed
change nor hold one that was rolled back.
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
