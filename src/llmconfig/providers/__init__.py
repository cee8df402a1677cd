"""Provider adapters (discovery, validation, LangChain construction) and the provider service."""

from llmconfig.providers.adapters import PROVIDER_TYPES, ProviderAdapter, adapter_for
from llmconfig.providers.schemas import (
    CatalogEntry,
    ProviderCreate,
    ProviderPublic,
    ProviderUpdate,
    ValidationResult,
)
from llmconfig.providers.service import ProviderService

__all__ = [
    "PROVIDER_TYPES",
    "CatalogEntry",
    "ProviderAdapter",
    "ProviderCreate",
    "ProviderPublic",
    "ProviderService",
    "ProviderUpdate",
    "ValidationResult",
    "adapter_for",
]
