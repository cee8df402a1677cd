"""The built-in interaction types and the defaults ``llmconfig seed`` and the environment fallback use."""

from __future__ import annotations

from dataclasses import dataclass

from llmconfig.providers.catalog import ModelKind


@dataclass(frozen=True, slots=True)
class Default:
    model_name: str
    temperature: float


BUILTIN_DEFAULTS: dict[str, Default] = {
    "reasoning": Default("gpt-4o", 0.7),
    "tools": Default("gpt-4o-mini", 0.1),
    "subagents": Default("gpt-4o-mini", 0.5),
    "planning": Default("gpt-4o", 0.2),
    "embeddings": Default("text-embedding-3-small", 0.0),
}

# Used for interaction types that operators added themselves.
KIND_DEFAULTS: dict[ModelKind, Default] = {
    "chat": Default("gpt-4o-mini", 0.5),
    "embeddings": Default("text-embedding-3-small", 0.0),
}


def default_for(interaction_type: str, kind: ModelKind) -> Default:
    return BUILTIN_DEFAULTS.get(interaction_type, KIND_DEFAULTS[kind])
