"""Small shared pieces: percentiles, timing loops, the result row, and the in-process service setup."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

PROVIDER_KEY = "sk-bench-2f9d6c1b8a7e4053"


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def time_each(call: Callable[[], Any], iterations: int, *, before: Callable[[], Any] | None = None) -> list[float]:
    """Seconds taken by each of ``iterations`` calls (``before`` runs untimed ahead of each)."""
    samples = []
    for _ in range(iterations):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def fmt_seconds(seconds: float) -> str:
    """Seconds in the unit that reads best (ns, µs, ms, s)."""
    if math.isnan(seconds):
        return "n/a"
    magnitude = abs(seconds)
    if magnitude < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if magnitude < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if magnitude < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


@dataclass
class Row:
    """One line of the results table. ``met`` is None for figures without a target."""

    figure: str
    value: str
    target: str = "—"
    met: bool | None = None
    details: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "—"}[self.met]


def settings_for(database_url: str, master_key: str, workdir: Path, **overrides: Any) -> Any:
    """:class:`llmconfig.Settings` for an in-process service, independent of the environment and ``.env``."""
    from llmconfig import Settings

    values: dict[str, Any] = {
        "database_url": database_url,
        "master_key": SecretStr(master_key),
        "master_key_file": workdir / "unused.key",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def seed(svc: Any, *, base_url: str, models: dict[str, str], name: str = "bench") -> str:
    """Migrate, add one custom provider (with an encrypted API key), configure ``models``; the provider id."""
    from llmconfig.config import ConfigUpdate
    from llmconfig.db import upgrade_to_head
    from llmconfig.providers.schemas import ProviderCreate

    upgrade_to_head(svc.engine)
    provider, _ = svc.providers.add(
        ProviderCreate(name=name, provider_type="custom", api_base_url=base_url, api_key=SecretStr(PROVIDER_KEY)),
        actor="bench",
        validate=False,
    )
    for interaction_type, model in models.items():
        svc.config.set_global(
            interaction_type, ConfigUpdate(provider_id=provider.id, model_name=model, temperature=0.5), actor="bench"
        )
    provider_id: str = provider.id
    return provider_id


ALL_TYPES = {
    "reasoning": "model-a",
    "tools": "model-a",
    "subagents": "model-a",
    "planning": "model-a",
    "embeddings": "text-embedding-3-small",
}
