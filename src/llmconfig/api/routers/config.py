"""/config: the global configuration of every interaction type."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, TypeAdapter

from llmconfig.api.deps import API_PREFIX, AdminDep, IfMatchDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.api.snapshot import JSONBytes, answer
from llmconfig.config import ConfigEntry, ConfigUpdate
from llmconfig.config.schemas import ConfigValidation, ConfigVersion, Rollback
from llmconfig.snapshot import View

router = APIRouter(prefix=f"{API_PREFIX}/config", tags=["config"], responses=COMMON_RESPONSES)


class Summary(BaseModel):
    summary: str


# The reads answer from the server's read snapshot (llmconfig.snapshot): the response_model documents the
# answer, which the snapshot serialised once from that very model.


@router.get("", response_model=dict[str, ConfigEntry])
async def get_config(request: Request, _caller: ReaderDep) -> Response:
    """The global configuration, keyed by interaction type (types not configured are absent)."""
    return await answer(request, View.CONFIG)


@router.get("/summary", response_model=Summary)
async def config_summary(request: Request, _caller: ReaderDep) -> Response:
    """One human-readable line per interaction type."""
    return await answer(request, View.SUMMARY)


@router.get("/validate", response_model=ConfigValidation)
def validate_config(service: ServiceDep, _caller: ReaderDep) -> ConfigValidation:
    """Check every configured type against its provider, all providers at once."""
    return service.config.validate()


@router.get("/{interaction_type}", response_model=ConfigEntry, responses=NOT_FOUND)
async def get_config_entry(interaction_type: str, request: Request, _caller: ReaderDep) -> Response:
    return await answer(request, View.CONFIG_ENTRY, interaction_type)


_ENTRY = TypeAdapter(ConfigEntry)


@router.put("/{interaction_type}", response_model=ConfigEntry, responses={**NOT_FOUND, **CONFLICT})
def put_config_entry(
    interaction_type: str, data: ConfigUpdate, service: ServiceDep, caller: AdminDep, if_match: IfMatchDep
) -> Response:
    """Set provider, model and parameters. A stale ``version`` (or ``If-Match``) gets 409 and changes nothing."""
    if if_match is not None and data.version is None:
        data = data.model_copy(update={"version": if_match})
    # Serialised here: the entry is a ConfigEntry already, which FastAPI would validate again first.
    return JSONBytes(_ENTRY.dump_json(service.config.set_global(interaction_type, data, actor=caller.name)))


@router.get("/{interaction_type}/history", response_model=list[ConfigVersion], responses=NOT_FOUND)
def config_history(interaction_type: str, service: ServiceDep, _caller: ReaderDep) -> list[ConfigVersion]:
    """Every version of this type's global entry, newest first, with who changed it and when."""
    return service.config.history(interaction_type)


@router.post("/{interaction_type}/rollback", response_model=ConfigEntry, responses={**NOT_FOUND, **CONFLICT})
def rollback_config(interaction_type: str, data: Rollback, service: ServiceDep, caller: AdminDep) -> ConfigEntry:
    """Restore an earlier version's fields; the result is a new version, audited as a rollback."""
    return service.config.rollback(interaction_type, data.version, actor=caller.name)
