"""What can be told about a model from its name, and the built-in catalogs used when discovery cannot help."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["chat", "embeddings"]

# Anthropic's models API answers 404 on some compatible servers and older gateways; these are the
# current public models at the time of writing and are only used then.
ANTHROPIC_BUILTIN_MODELS: tuple[tuple[str, str], ...] = (
    ("claude-opus-4-1", "Claude Opus 4.1"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ("claude-3-5-haiku-latest", "Claude Haiku 3.5"),
)

_EMBEDDING_MARKERS = ("embed", "bge-", "e5-", "gte-", "minilm", "nomic-embed")


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    """A catalog entry as a provider reported it."""

    model_name: str
    kind: ModelKind
    display_name: str | None = None


def infer_kind(model_name: str) -> ModelKind:
    """Guess whether a model makes embeddings or chats, from its name.

    OpenAI-compatible ``/models`` endpoints do not say what a model does; every widely used embedding
    model has one of these markers in its name.
    """
    lowered = model_name.lower()
    return "embeddings" if any(marker in lowered for marker in _EMBEDDING_MARKERS) else "chat"
