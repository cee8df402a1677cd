"""Interaction types, configuration entries (global and per user) with their history, and resolution."""

from llmconfig.config.entries import EntryService
from llmconfig.config.resolution import Resolution, Resolver, Target
from llmconfig.config.schemas import (
    ConfigEntry,
    ConfigUpdate,
    EffectiveEntry,
    FallbackTarget,
    InteractionTypeCreate,
    InteractionTypeInfo,
)
from llmconfig.config.types import InteractionTypeService

__all__ = [
    "ConfigEntry",
    "ConfigUpdate",
    "EffectiveEntry",
    "EntryService",
    "FallbackTarget",
    "InteractionTypeCreate",
    "InteractionTypeInfo",
    "InteractionTypeService",
    "Resolution",
    "Resolver",
    "Target",
]
