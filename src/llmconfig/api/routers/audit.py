"""/audit: the trail of every change, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from llmconfig.api.deps import API_PREFIX, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES
from llmconfig.audit import AuditRecord

router = APIRouter(prefix=f"{API_PREFIX}/audit", tags=["audit"], responses=COMMON_RESPONSES)


@router.get("", response_model=list[AuditRecord])
def audit_trail(
    service: ServiceDep,
    _caller: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Entries older than this id (for the next page)")
    ] = None,
) -> list[AuditRecord]:
    return service.audit.entries(limit=limit, before=before)
