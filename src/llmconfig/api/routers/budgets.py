"""/budgets: what an interaction type, user, group or provider may spend, and what it has spent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, IfMatchDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.usage.budgets import BudgetInfo, BudgetUpdate

router = APIRouter(prefix=f"{API_PREFIX}/budgets", tags=["budgets"], responses=COMMON_RESPONSES)

Scope = Annotated[
    str,
    Path(
        max_length=300,
        description="type:<interaction type>, user:<user id>, group:<group> or provider:<provider id or name>",
    ),
]


@router.get("", response_model=list[BudgetInfo])
def list_budgets(service: ServiceDep, _caller: ReaderDep) -> list[BudgetInfo]:
    """Every budget with ``spent_usd``, ``spent_tokens`` and ``period_start`` of its current period."""
    return service.budgets.list()


@router.get("/{scope}", response_model=BudgetInfo, responses=NOT_FOUND)
def get_budget(scope: Scope, service: ServiceDep, _caller: ReaderDep) -> BudgetInfo:
    return service.budgets.get(scope)


@router.put("/{scope}", response_model=BudgetInfo, responses=CONFLICT)
def put_budget(
    scope: Scope, data: BudgetUpdate, service: ServiceDep, caller: AdminDep, if_match: IfMatchDep
) -> BudgetInfo:
    """Set the budget of a scope: a period, ``limit_usd`` and/or ``limit_tokens``, and optionally the
    ``on_exceed`` model calls go to once it is spent (without one they fail: ``BudgetExceededError`` in Python,
    429 ``insufficient_quota`` on the OpenAI-compatible endpoint)."""
    if if_match is not None and data.version is None:
        data = data.model_copy(update={"version": if_match})
    return service.budgets.set(scope, data, actor=caller.name)


@router.delete("/{scope}", status_code=204, responses=NOT_FOUND)
def delete_budget(scope: Scope, service: ServiceDep, caller: AdminDep) -> Response:
    service.budgets.delete(scope, actor=caller.name)
    return Response(status_code=204)
