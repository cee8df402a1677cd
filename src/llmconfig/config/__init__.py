"""Interaction types, global configuration, user overrides and resolution."""

from llmconfig.config.resolution import Resolution, Target
from llmconfig.config.schemas import (
    ConfigEntry,
    ConfigUpdate,
    EffectiveEntry,
    FallbackTarget,
    InteractionTypeCreate,
    InteractionTypeInfo,
)
from llmconfig.config.service import ConfigService

__all__ = [
    "ConfigEntry",
    "ConfigService",
    "ConfigUpdate",
    "EffectiveEntry",
    "FallbackTarget",
    "InteractionTypeCreate",
    "InteractionTypeInfo",
    "Resolution",
    "Target",
]
