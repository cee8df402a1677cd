"""llmconfig: which provider, model and parameters each kind of LLM work uses, changed live.

>>> import llmconfig
>>> llm = llmconfig.get_llm("reasoning")          # doctest: +SKIP
"""

from llmconfig.errors import (
    BudgetExceededError,
    ConcurrentChangeError,
    ConfigUnavailableError,
    ConflictError,
    DatabaseUnavailableError,
    LLMConfigError,
    NotFoundError,
    ProviderError,
    SecretBackendError,
    SecretDecryptionError,
    SettingsError,
    ValidationError,
)
from llmconfig.llm import (
    LLMConfigService,
    aget_embeddings,
    aget_llm,
    get_embeddings,
    get_llm,
    reset_default_service,
)
from llmconfig.settings import Settings

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Services brings the database drivers; a client-mode process (LLMCONFIG_SERVER_URL) never needs them.
    if name == "Services":
        from llmconfig.services import Services

        return Services
    raise AttributeError(f"module 'llmconfig' has no attribute {name!r}")


__all__ = [
    "BudgetExceededError",
    "ConcurrentChangeError",
    "ConfigUnavailableError",
    "ConflictError",
    "DatabaseUnavailableError",
    "LLMConfigError",
    "LLMConfigService",
    "NotFoundError",
    "ProviderError",
    "SecretBackendError",
    "SecretDecryptionError",
    "Services",
    "Settings",
    "SettingsError",
    "ValidationError",
    "__version__",
    "aget_embeddings",
    "aget_llm",
    "get_embeddings",
    "get_llm",
    "reset_default_service",
]
