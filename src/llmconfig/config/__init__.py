"""Interaction types, configuration entries (global, per group and per user) with their history, groups of
users, weighted variants, and resolution."""

from llmconfig.config.entries import EntryService
from llmconfig.config.groups import GroupService
from llmconfig.config.resolution import Resolution, Resolver, Target, VariantResolution
from llmconfig.config.schemas import (
    ConfigEntry,
    ConfigUpdate,
    EffectiveEntry,
    FallbackTarget,
    GroupInfo,
    GroupMembership,
    GroupMembershipUpdate,
    InteractionTypeCreate,
    InteractionTypeInfo,
    Variant,
    VariantUpdate,
)
from llmconfig.config.types import InteractionTypeService
from llmconfig.config.variants import MAIN, choose

__all__ = [
    "MAIN",
    "ConfigEntry",
    "ConfigUpdate",
    "EffectiveEntry",
    "EntryService",
    "FallbackTarget",
    "GroupInfo",
    "GroupMembership",
    "GroupMembershipUpdate",
    "GroupService",
    "InteractionTypeCreate",
    "InteractionTypeInfo",
    "InteractionTypeService",
    "Resolution",
    "Resolver",
    "Target",
    "Variant",
    "VariantResolution",
    "VariantUpdate",
    "choose",
]
