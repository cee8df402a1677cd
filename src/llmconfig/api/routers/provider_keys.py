"""/providers/{id}/keys: a provider's several API keys, each shown by its hint only (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from llmconfig.providers.schemas import ProviderKeyCreate, ProviderKeyCreated, ProviderKeyPublic

router = APIRouter(prefix=f"{API_PREFIX}/providers", tags=["provider keys"], responses=COMMON_RESPONSES)


@router.get("/{provider_id}/keys", response_model=list[ProviderKeyPublic], responses=NOT_FOUND)
def list_keys(provider_id: str, service: ServiceDep, _caller: AdminDep) -> list[ProviderKeyPublic]:
    """The provider's keys, the first one first: id, hint, and until when this server rests it (429/401)."""
    return service.providers.keys.list(provider_id)


@router.post(
    "/{provider_id}/keys", status_code=201, response_model=ProviderKeyCreated, responses={**NOT_FOUND, **CONFLICT}
)
def add_key(provider_id: str, data: ProviderKeyCreate, service: ServiceDep, caller: AdminDep) -> ProviderKeyCreated:
    """Add a key; calls take the provider's keys in turn. The key is stored encrypted and never returned."""
    return service.providers.keys.add(provider_id, data, actor=caller.name)


@router.delete("/{provider_id}/keys/{key_id}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def remove_key(provider_id: str, key_id: str, service: ServiceDep, caller: AdminDep) -> Response:
    """Remove a key; 409 for the last key of an OpenAI or Anthropic provider that an entry uses."""
    service.providers.keys.remove(provider_id, key_id, actor=caller.name)
    return Response(status_code=204)
