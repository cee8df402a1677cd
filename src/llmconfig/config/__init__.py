"""Interaction types, global configuration, user overrides and resolution."""

from llmconfig.config.resolution import Resolution, Target
from llmconfig.config.schemas import ConfigEntry, ConfigUpdate, FallbackTarget, InteractionTypeInfo
from llmconfig.config.service import ConfigService

__all__ = [
    "ConfigEntry",
    "ConfigService",
    "ConfigUpdate",
    "FallbackTarget",
    "InteractionTypeInfo",
    "Resolution",
    "Target",
]
