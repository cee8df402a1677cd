"""/groups: groups of users with their own entries (between the users' overrides and the global entries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, IfMatchDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.config import ConfigEntry, ConfigUpdate, GroupInfo
from llmconfig.config.schemas import ConfigVersion, Rollback, check_group_name

router = APIRouter(prefix=f"{API_PREFIX}/groups", tags=["groups"], responses=COMMON_RESPONSES)


async def valid_group(group: str) -> str:
    """The group name of the path, or 422 saying what a group name may be."""
    return check_group_name(group)


GroupDep = Annotated[str, Depends(valid_group)]


@router.get("", response_model=list[GroupInfo])
def list_groups(service: ServiceDep, _caller: ReaderDep) -> list[GroupInfo]:
    """Every group with its members and the interaction types it has entries for."""
    return service.groups.list()


@router.delete("/{group}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def delete_group(group: GroupDep, service: ServiceDep, caller: AdminDep) -> Response:
    """Delete a group with its entries and memberships; its members follow their other groups (audited)."""
    service.groups.delete(group, actor=caller.name)
    return Response(status_code=204)


@router.get("/{group}/config", response_model=dict[str, ConfigEntry], responses=NOT_FOUND)
def group_config(group: GroupDep, service: ServiceDep, _caller: ReaderDep) -> dict[str, ConfigEntry]:
    """The group's entries, keyed by interaction type (``source`` ``group:<name>``)."""
    return service.config.group_entries(group)


@router.put("/{group}/config/{interaction_type}", response_model=ConfigEntry, responses={**NOT_FOUND, **CONFLICT})
def put_group_entry(
    group: GroupDep,
    interaction_type: str,
    data: ConfigUpdate,
    service: ServiceDep,
    caller: AdminDep,
    if_match: IfMatchDep,
) -> ConfigEntry:
    """Set the group's entry of one interaction type (the group is created if it is new); same body as the
    global entry. It wins over the global entry for the group's members; a user's override wins over it."""
    if if_match is not None and data.version is None:
        data = data.model_copy(update={"version": if_match})
    return service.config.set_group_entry(group, interaction_type, data, actor=caller.name)


@router.delete("/{group}/config/{interaction_type}", status_code=204, responses=NOT_FOUND)
def delete_group_entry(group: GroupDep, interaction_type: str, service: ServiceDep, caller: AdminDep) -> Response:
    """Remove the group's entry; its members follow their next group, or the global entry, again."""
    service.config.clear_group_entry(group, interaction_type, actor=caller.name)
    return Response(status_code=204)


@router.get("/{group}/config/{interaction_type}/history", response_model=list[ConfigVersion], responses=NOT_FOUND)
def group_entry_history(
    group: GroupDep, interaction_type: str, service: ServiceDep, _caller: ReaderDep
) -> list[ConfigVersion]:
    """Every version of the group's entry of one type, newest first."""
    return service.config.history(interaction_type, group=group)


@router.post(
    "/{group}/config/{interaction_type}/rollback", response_model=ConfigEntry, responses={**NOT_FOUND, **CONFLICT}
)
def rollback_group_entry(
    group: GroupDep, interaction_type: str, data: Rollback, service: ServiceDep, caller: AdminDep
) -> ConfigEntry:
    """Restore an earlier version of the group's entry, as a new version."""
    return service.config.rollback(interaction_type, data.version, group=group, actor=caller.name)
