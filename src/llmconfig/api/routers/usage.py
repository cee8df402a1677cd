"""/usage and /prices: what the calls through get_llm cost, and the price table behind the estimate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.errors import ValidationError
from llmconfig.usage import GroupBy, Price, PriceUpdate, UsageReport

router = APIRouter(prefix=API_PREFIX, tags=["usage"], responses=COMMON_RESPONSES)


@router.get("/usage", response_model=UsageReport)
def usage_report(
    service: ServiceDep,
    _caller: ReaderDep,
    group_by: Annotated[
        list[GroupBy] | None,
        Query(description="How to group the calls; repeat it (day, then interaction_type) for combinations"),
    ] = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive, ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Until this time (exclusive, ISO 8601)")] = None,
) -> UsageReport:
    """Calls, errors, tokens, estimated cost (USD) and latency p50/p95 per group."""
    if group_by is not None and len(group_by) > 3:
        raise ValidationError("group_by takes at most 3 dimensions")
    return service.usage.report(group_by=group_by or ["interaction_type"], since=since, until=until)


@router.get("/prices", response_model=list[Price])
def list_prices(service: ServiceDep, _caller: ReaderDep) -> list[Price]:
    """USD per million input and output tokens, per model."""
    return service.usage.prices()


ModelName = Annotated[str, Path(min_length=1, max_length=255)]


@router.put("/prices/{model_name}", response_model=Price, responses=CONFLICT)
def set_price(model_name: ModelName, data: PriceUpdate, service: ServiceDep, caller: AdminDep) -> Price:
    """Create or change a model's price; it applies to calls recorded from then on."""
    return service.usage.set_price(model_name, data, actor=caller.name)


@router.delete("/prices/{model_name}", status_code=204, responses=NOT_FOUND)
def delete_price(model_name: ModelName, service: ServiceDep, caller: AdminDep) -> Response:
    service.usage.delete_price(model_name, actor=caller.name)
    return Response(status_code=204)
