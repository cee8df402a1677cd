"""/interaction-types: the built-in kinds of LLM work and the operators' own."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.api.snapshot import answer
from llmconfig.config import InteractionTypeInfo
from llmconfig.config.schemas import InteractionTypeCreate
from llmconfig.snapshot import View

router = APIRouter(prefix=f"{API_PREFIX}/interaction-types", tags=["interaction types"], responses=COMMON_RESPONSES)


@router.get("", response_model=list[InteractionTypeInfo])
async def list_interaction_types(request: Request, _caller: ReaderDep) -> Response:
    """The built-in types in their documented order, then the operators' own alphabetically."""
    return await answer(request, View.INTERACTION_TYPES)


@router.post("", status_code=201, response_model=InteractionTypeInfo, responses=CONFLICT)
def add_interaction_type(data: InteractionTypeCreate, service: ServiceDep, caller: AdminDep) -> InteractionTypeInfo:
    """Add a custom interaction type of kind ``chat`` or ``embeddings``."""
    return service.types.add(data, actor=caller.name)


@router.delete("/{name}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def delete_interaction_type(name: str, service: ServiceDep, caller: AdminDep) -> Response:
    """Delete a custom type; 409 for built-ins and while it is configured."""
    service.types.delete(name, actor=caller.name)
    return Response(status_code=204)
