"""Which variant of an entry a call gets: the one function every path (library, client mode, gateway) uses.

An entry with variants splits its traffic by weight. Its own provider and model are the variant named
``main`` (weight ``weight``, 100 by default), followed by its ``variants`` in the order they are listed. The
variants are laid out one after the other on [0, 1), each taking its share of the total weight:

    weights main 50, b 50:   [0.0 ── main ── 0.5 ── b ── 1.0)
    weights main 60, b 40:   [0.0 ──── main ──── 0.6 ─ b ─ 1.0)

A user id always lands on the same point of [0, 1): the first 8 bytes of the SHA-256 of the interaction type
and the user id. So a user keeps their variant for as long as the weights stay, in every process and in
client mode, and a change of weights moves only the users between the old and the new boundaries (50/50 to
60/40 moves the 10% between 0.5 and 0.6 from ``b`` to ``main``, and nobody else). New variants are best added
at the end of the list: inserting one in the middle shifts the ones after it.

Calls without a user id draw a point at random, per call, so that they too split by weight.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Protocol

# The name of an entry's own provider and model among its variants.
MAIN = "main"

_SCALE = float(2**64)


class Weighted(Protocol):
    """Anything that knows its interaction type and its variants' weights in layout order (main first)."""

    @property
    def interaction_type(self) -> str: ...

    @property
    def variant_weights(self) -> Sequence[tuple[str, int]]: ...


def position(interaction_type: str, user_id: str) -> float:
    """Where ``user_id`` lands on [0, 1) for ``interaction_type``; the same in every process and on every host."""
    digest = hashlib.sha256(f"{interaction_type}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def pick(weights: Sequence[int], at: float) -> int:
    """The index of the variant whose share of [0, 1) contains ``at``, with ``weights`` laid out in order."""
    total = sum(weights)
    point = at * total
    reached = 0
    for index, weight in enumerate(weights):
        reached += weight
        if point < reached:
            return index
    return len(weights) - 1  # at == 1.0 cannot happen, but rounding must not fall off the end


def choose(entry: Weighted, user_id: str | None, *, draw: Callable[[], float] = random.random) -> str:
    """The name of the variant of ``entry`` for ``user_id``: always the same one for a user id, and drawn by
    weight (``draw``) for a call without one. ``main`` for an entry without variants."""
    layout = entry.variant_weights
    if len(layout) <= 1:
        return MAIN
    at = draw() if user_id is None else position(entry.interaction_type, user_id)
    return layout[pick([weight for _, weight in layout], at)][0]
