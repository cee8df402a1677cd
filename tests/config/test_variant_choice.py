"""Which variant a call gets: stable per user, minimal moves when weights change, split by weight without a user."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

import pytest

from llmconfig.config.variants import MAIN, choose, pick, position

USERS = [f"user-{n}" for n in range(10_000)]


@dataclass
class Entry:
    interaction_type: str
    variant_weights: list[tuple[str, int]]


def assignments(entry: Entry) -> dict[str, str]:
    return {user: choose(entry, user) for user in USERS}


def test_a_user_always_gets_the_same_variant_and_the_split_follows_the_weights() -> None:
    entry = Entry("reasoning", [(MAIN, 50), ("candidate", 50)])
    first = assignments(entry)
    assert assignments(entry) == first
    shares = Counter(first.values())
    assert 0.47 < shares["candidate"] / len(USERS) < 0.53
    # The interaction type takes part: a user is not in the same half for every type.
    other = {user: choose(Entry("planning", entry.variant_weights), user) for user in USERS}
    assert 0.4 < sum(first[u] != other[u] for u in USERS) / len(USERS) < 0.6


def test_moving_weights_from_50_50_to_60_40_moves_about_a_tenth_of_the_users_and_only_towards_main() -> None:
    before = assignments(Entry("reasoning", [(MAIN, 50), ("candidate", 50)]))
    after = assignments(Entry("reasoning", [(MAIN, 60), ("candidate", 40)]))
    moved = [user for user in USERS if before[user] != after[user]]
    assert 0.08 <= len(moved) / len(USERS) <= 0.12
    assert {(before[u], after[u]) for u in moved} == {("candidate", MAIN)}


def test_a_variant_added_at_the_end_moves_users_only_one_step_along_the_layout() -> None:
    before = assignments(Entry("tools", [(MAIN, 50), ("b", 50)]))
    after = assignments(Entry("tools", [(MAIN, 50), ("b", 50), ("c", 10)]))
    moved = {(before[user], after[user]) for user in USERS if before[user] != after[user]}
    assert moved == {(MAIN, "b"), ("b", "c")}
    assert 0.07 < Counter(after.values())["c"] / len(USERS) < 0.11  # 10 of 110


def test_the_point_of_a_user_is_the_same_in_another_interpreter() -> None:
    # Python's hash() of a string changes between processes; the variant must not.
    script = "from llmconfig.config.variants import position; print(repr(position('reasoning', 'u-42')))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(other.stdout) == position("reasoning", "u-42")
    assert 0 <= position("reasoning", "u-42") < 1


def test_calls_without_a_user_are_drawn_by_weight() -> None:
    draws = random.Random(7)
    entry = Entry("reasoning", [(MAIN, 75), ("b", 25)])
    shares = Counter(choose(entry, None, draw=draws.random) for _ in range(20_000))
    assert 0.73 < shares[MAIN] / 20_000 < 0.77


@pytest.mark.parametrize(
    ("weights", "at", "index"),
    [([1], 0.99, 0), ([50, 50], 0.0, 0), ([50, 50], 0.4999, 0), ([50, 50], 0.5, 1), ([1, 2, 1], 0.26, 1)],
)
def test_pick_lays_the_weights_out_in_order(weights: list[int], at: float, index: int) -> None:
    assert pick(weights, at) == index


def test_an_entry_without_variants_is_main_for_everyone() -> None:
    assert choose(Entry("reasoning", [(MAIN, 100)]), "u-1") == MAIN
    assert choose(Entry("reasoning", [(MAIN, 100)]), None) == MAIN
