"""Configured LangChain objects: ``get_llm`` / ``get_embeddings`` and their async twins.

The process-wide :class:`LLMConfigService` behind these functions is created on first use from the
environment (``LLMCONFIG_*``, ``.env``) and reused; :func:`reset_default_service` closes it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from llmconfig.llm.service import LLMConfigService

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

_default_service: LLMConfigService | None = None
_default_lock = threading.Lock()


def default_service() -> LLMConfigService:
    """The process-wide service behind :func:`get_llm`, created on first use from the environment."""
    global _default_service
    if _default_service is None:
        with _default_lock:
            if _default_service is None:
                _default_service = LLMConfigService()
    return _default_service


def reset_default_service() -> None:
    """Close the process-wide service; the next call builds a new one from the environment."""
    global _default_service
    with _default_lock:
        if _default_service is not None:
            _default_service.close()
        _default_service = None


def get_llm(interaction_type: str = "reasoning", *, user_id: str | None = None) -> BaseChatModel:
    """The LangChain chat model configured for ``interaction_type``, for ``user_id`` when given."""
    return default_service().get_llm(interaction_type, user_id=user_id)


def get_embeddings(interaction_type: str = "embeddings", *, user_id: str | None = None) -> Embeddings:
    """The LangChain embeddings model configured for ``interaction_type``."""
    return default_service().get_embeddings(interaction_type, user_id=user_id)


async def aget_llm(interaction_type: str = "reasoning", *, user_id: str | None = None) -> BaseChatModel:
    """Async twin of :func:`get_llm`."""
    return await default_service().aget_llm(interaction_type, user_id=user_id)


async def aget_embeddings(interaction_type: str = "embeddings", *, user_id: str | None = None) -> Embeddings:
    """Async twin of :func:`get_embeddings`."""
    return await default_service().aget_embeddings(interaction_type, user_id=user_id)


__all__ = [
    "LLMConfigService",
    "aget_embeddings",
    "aget_llm",
    "default_service",
    "get_embeddings",
    "get_llm",
    "reset_default_service",
]
