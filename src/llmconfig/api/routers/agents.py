"""What client-mode processes talk to: resolve, the revision, the change stream, usage events.

These carry provider keys (``/resolve``) or feed the usage table, so they need a ``client`` (or ``admin``)
token; a client token limited to some interaction types may only resolve and report those.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from llmconfig.api import authz
from llmconfig.api.change_stream import ChangeStream
from llmconfig.api.deps import API_PREFIX, ClientDep, ClientForTypeDep, ServiceDep, bearer_token
from llmconfig.api.errors import COMMON_RESPONSES, NOT_FOUND
from llmconfig.api.snapshot import SCOPE_KEY, JSONBytes, Kept
from llmconfig.config.schemas import SingleLine
from llmconfig.llm.resolved import ResolvedConfig
from llmconfig.usage.recorder import UsageEvent
from llmconfig.usage.spend import SpentBudget

router = APIRouter(prefix=API_PREFIX, tags=["agents"], responses=COMMON_RESPONSES)


@router.get("/resolve/{interaction_type}", response_model=ResolvedConfig, responses=NOT_FOUND)
async def resolve(
    interaction_type: str,
    request: Request,
    service: ServiceDep,
    _caller: ClientForTypeDep,
    user_id: Annotated[str | None, Query(max_length=255, description="Whose overrides apply")] = None,
) -> Response:
    """What a process needs to build the model of ``interaction_type`` for ``user_id``: the primary target
    and the fallback chain, each with its key, the parameters, and the revision it is current at.

    404 for an unknown type, and for a type with nothing configured (problem type
    ``urn:llmconfig:problem:not-configured``, so that clients take their environment fallback).
    """
    body = service.resolved_json(interaction_type, user_id)
    if body is None:
        resolved = await service.aresolve(interaction_type, user_id=user_id)
        # Kept as JSON unless a change dropped it meanwhile. Serialised by the model itself: validating it again
        # against the response model would cost a client's cold resolution as much as the rest of the request.
        body = service.resolved_json(interaction_type, user_id) or resolved.model_dump_json().encode()
    request.scope[SCOPE_KEY] = Kept(partial(service.resolved_json, interaction_type, user_id), interaction_type)
    return JSONBytes(body)


class Revision(BaseModel):
    revision: int


@router.get("/revision", response_model=Revision)
def revision(service: ServiceDep, _caller: ClientDep) -> Revision:
    """The revision counter: it grows with every change. Clients poll it while their change stream is down."""
    return Revision(revision=service.resolver.revision())


@router.get(
    "/changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events, one per change"}},
)
async def changes(
    request: Request,
    _caller: ClientDep,
    last_event_id: Annotated[
        str | None, Header(description="The last revision seen: the changes since are replayed (or resync)")
    ] = None,
) -> StreamingResponse:
    """Committed changes as they happen (``event: change``, ``id`` = revision), ``event: resync`` when a client
    must drop everything it resolved, and a comment at least every ``LLMCONFIG_STREAM_HEARTBEAT`` seconds."""
    stream: ChangeStream = request.app.state.change_stream
    since = int(last_event_id) if last_event_id is not None and last_event_id.strip().isdigit() else None
    return StreamingResponse(
        stream.events(since, token=bearer_token(request)),
        media_type="text/event-stream",
        # No buffering by nginx and friends, no caching anywhere: each event must reach the client at once.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class Spend(BaseModel):
    spent: list[SpentBudget]


@router.get("/spend", response_model=Spend)
def spend(service: ServiceDep, _caller: ClientDep) -> Spend:
    """The budgets that are spent now (what client-mode processes check before each call), as this server
    last read them from the usage table (at most ``LLMCONFIG_BUDGET_REFRESH`` seconds ago)."""
    return Spend(spent=list(service.services.spend.all_spent()))


class UsageEventIn(BaseModel):
    """One call made by a client-mode process, as its usage tracking recorded it."""

    model_config = ConfigDict(extra="forbid")

    at: datetime
    interaction_type: SingleLine = Field(min_length=1, max_length=64)
    user_id: SingleLine | None = Field(default=None, max_length=255)
    provider_id: SingleLine | None = Field(default=None, max_length=36)
    provider_name: SingleLine = Field(min_length=1, max_length=100)
    model_name: SingleLine = Field(min_length=1, max_length=255)
    prompt_tokens: int = Field(ge=0, le=100_000_000)
    completion_tokens: int = Field(ge=0, le=100_000_000)
    latency_ms: float = Field(ge=0, le=86_400_000, allow_inf_nan=False)
    success: bool
    error_class: SingleLine | None = Field(default=None, max_length=100)
    variant: SingleLine | None = Field(
        default=None, max_length=64, description="The variant of the entry that made the call, when it has variants"
    )
    # The hint (last four characters) of the provider key that served the call.
    key_hint: SingleLine | None = Field(default=None, max_length=8)


class UsageBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[UsageEventIn] = Field(max_length=1000)


class Accepted(BaseModel):
    accepted: int


@router.post("/usage/events", status_code=202, response_model=Accepted)
def post_usage_events(batch: UsageBatch, service: ServiceDep, caller: ClientDep) -> Accepted:
    """Record a batch of usage events from a client-mode process (written in the background, like the
    server's own); every event's interaction type must be one the token covers."""
    for event in batch.events:
        authz.require_type(caller, event.interaction_type)
    for event in batch.events:
        service.usage_recorder.record(UsageEvent(**event.model_dump()))
    return Accepted(accepted=len(batch.events))
