"""What a ``get_llm`` call resolves to: plain, hashable values, so they can key the object cache.

A :class:`Resolution` holds everything an object is built from, except the decrypted key: the key is
identified by its secret reference and the provider's version (which changes whenever the key does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmconfig.config.schemas import ConfigSource
from llmconfig.providers.catalog import ModelKind


@dataclass(frozen=True, slots=True)
class Target:
    """One (provider, model) pair, with what is needed to call it."""

    provider_id: str
    provider_name: str
    provider_type: str
    provider_version: int
    base_url: str
    api_key_ref: str | None
    model_name: str


@dataclass(frozen=True, slots=True)
class Resolution:
    interaction_type: str
    kind: ModelKind
    source: ConfigSource
    target: Target
    temperature: float | None
    max_tokens: int | None
    extra_params_json: str
    fallbacks: tuple[Target, ...] = ()

    @property
    def extra_params(self) -> dict[str, Any]:
        params: dict[str, Any] = json.loads(self.extra_params_json)
        return params


def freeze_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))
