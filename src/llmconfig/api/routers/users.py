"""/users/{user_id}/config and /groups: per-user overrides, the user's groups, and the configuration in effect."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, IfMatchDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.config import ConfigEntry, ConfigUpdate, GroupMembership, GroupMembershipUpdate
from llmconfig.config.schemas import ConfigVersion, EffectiveEntry, Rollback

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"], responses=COMMON_RESPONSES)

UserId = Path(min_length=1, max_length=255, description="The platform's id of the user")


@router.get("/{user_id}/config", response_model=dict[str, EffectiveEntry])
def effective_config(service: ServiceDep, _caller: ReaderDep, user_id: str = UserId) -> dict[str, EffectiveEntry]:
    """What each interaction type resolves to for this user, with ``source`` ``user``, ``group:<name>``,
    ``global`` or ``env``, and ``variant``: which of the entry's variants this user gets."""
    return service.config.effective(user_id)


@router.put("/{user_id}/config/{interaction_type}", response_model=ConfigEntry, responses={**NOT_FOUND, **CONFLICT})
def put_override(
    interaction_type: str,
    data: ConfigUpdate,
    service: ServiceDep,
    caller: AdminDep,
    if_match: IfMatchDep,
    user_id: str = UserId,
) -> ConfigEntry:
    """Set this user's override of one interaction type."""
    if if_match is not None and data.version is None:
        data = data.model_copy(update={"version": if_match})
    return service.config.set_override(user_id, interaction_type, data, actor=caller.name)


@router.delete("/{user_id}/config/{interaction_type}", status_code=204, responses=NOT_FOUND)
def delete_override(interaction_type: str, service: ServiceDep, caller: AdminDep, user_id: str = UserId) -> Response:
    """Remove this user's override; the user follows the global configuration again."""
    service.config.clear_override(user_id, interaction_type, actor=caller.name)
    return Response(status_code=204)


@router.get("/{user_id}/config/{interaction_type}/history", response_model=list[ConfigVersion], responses=NOT_FOUND)
def override_history(
    interaction_type: str, service: ServiceDep, _caller: ReaderDep, user_id: str = UserId
) -> list[ConfigVersion]:
    """Every version of this user's override of one type, newest first."""
    return service.config.history(interaction_type, user_id)


@router.post(
    "/{user_id}/config/{interaction_type}/rollback", response_model=ConfigEntry, responses={**NOT_FOUND, **CONFLICT}
)
def rollback_override(
    interaction_type: str, data: Rollback, service: ServiceDep, caller: AdminDep, user_id: str = UserId
) -> ConfigEntry:
    """Restore an earlier version of this user's override, as a new version."""
    return service.config.rollback(interaction_type, data.version, user_id=user_id, actor=caller.name)


@router.get("/{user_id}/groups", response_model=GroupMembership)
def user_groups(service: ServiceDep, _caller: ReaderDep, user_id: str = UserId) -> GroupMembership:
    """This user's groups, in order (the first with an entry for a type wins)."""
    return service.groups.membership(user_id)


@router.put("/{user_id}/groups", response_model=GroupMembership, responses=CONFLICT)
def put_user_groups(
    data: GroupMembershipUpdate, service: ServiceDep, caller: AdminDep, user_id: str = UserId
) -> GroupMembership:
    """Replace this user's groups with ``groups``, in that order; groups that are new come into being."""
    return service.groups.set_membership(user_id, data, actor=caller.name)
