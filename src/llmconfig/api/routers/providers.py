"""/providers: add, list, change, remove, validate and discover."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, CatalogRefreshDep, IfMatchDep, ReaderDep, ServiceDep
from llmconfig.api.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND, PROVIDER_FAILED
from llmconfig.api.snapshot import answer
from llmconfig.providers import CatalogEntry, ProviderCreate, ProviderPublic, ProviderUpdate, ValidationResult
from llmconfig.snapshot import View

router = APIRouter(prefix=f"{API_PREFIX}/providers", tags=["providers"], responses=COMMON_RESPONSES)


@router.get("", response_model=list[ProviderPublic])
async def list_providers(request: Request, _caller: ReaderDep) -> Response:
    """Every provider, by name."""
    return await answer(request, View.PROVIDERS)


@router.post("", status_code=201, response_model=ProviderPublic, responses={**CONFLICT, **PROVIDER_FAILED})
def add_provider(
    data: ProviderCreate,
    service: ServiceDep,
    caller: AdminDep,
    validate: Annotated[bool, Query(description="Check the provider first; nothing is written if it fails")] = False,
) -> ProviderPublic:
    """Add a provider. Its key is stored in the secret backend and never returned."""
    provider, _ = service.providers.add(data, actor=caller.name, validate=validate)
    return provider


@router.get("/{provider_id}", response_model=ProviderPublic, responses=NOT_FOUND)
async def get_provider(provider_id: str, request: Request, _caller: ReaderDep) -> Response:
    """One provider, by id (or by name)."""
    return await answer(request, View.PROVIDER, provider_id)


@router.patch("/{provider_id}", response_model=ProviderPublic, responses={**NOT_FOUND, **CONFLICT})
def update_provider(
    provider_id: str, data: ProviderUpdate, service: ServiceDep, caller: AdminDep, if_match: IfMatchDep
) -> ProviderPublic:
    """Partial update: fields left out stay; ``"api_key": null`` removes the key. Stale ``version`` → 409.

    Moving ``api_base_url`` to another origin of a provider with a key needs ``api_key`` or ``"keep_api_key": true``
    in the same request (422 otherwise, nothing written), so that a stored key never follows a URL by accident.
    """
    if if_match is not None and data.version is None:
        data = data.model_copy(update={"version": if_match})
    return service.providers.update(provider_id, data, actor=caller.name)


@router.delete("/{provider_id}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
def delete_provider(provider_id: str, service: ServiceDep, caller: AdminDep, if_match: IfMatchDep) -> Response:
    """Delete a provider; 409 while an interaction type uses it, naming those types."""
    service.providers.remove(provider_id, actor=caller.name, version=if_match)
    return Response(status_code=204)


@router.post("/{provider_id}/validate", response_model=ValidationResult, responses=NOT_FOUND)
def validate_provider(provider_id: str, service: ServiceDep, _caller: AdminDep) -> ValidationResult:
    """Check connectivity and credentials and refresh the catalog; the outcome is in the body."""
    return service.providers.validate(provider_id)


@router.get("/{provider_id}/models", response_model=list[CatalogEntry], responses={**NOT_FOUND, **PROVIDER_FAILED})
def provider_models(provider_id: str, service: ServiceDep, refresh: CatalogRefreshDep) -> list[CatalogEntry]:
    """The provider's catalog. ``refresh`` calls the provider and rewrites the catalog, so it needs admin."""
    return service.providers.catalog(provider_id, refresh=refresh)
