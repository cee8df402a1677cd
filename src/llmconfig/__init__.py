"""llmconfig: which provider, model and parameters each kind of LLM work uses, changed live.

>>> import llmconfig
>>> llm = llmconfig.get_llm("reasoning")          # doctest: +SKIP
"""

from llmconfig.errors import (
    ConcurrentChangeError,
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
from llmconfig.factory import LLMConfigService, get_embeddings, get_llm, reset_default_service
from llmconfig.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "ConcurrentChangeError",
    "ConflictError",
    "DatabaseUnavailableError",
    "LLMConfigError",
    "LLMConfigService",
    "NotFoundError",
    "ProviderError",
    "SecretBackendError",
    "SecretDecryptionError",
    "Settings",
    "SettingsError",
    "ValidationError",
    "__version__",
    "get_embeddings",
    "get_llm",
    "reset_default_service",
]
