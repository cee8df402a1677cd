"""The model cache under concurrency: pushed changes are never lost while requests fill the cache."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.settings import Settings
from tests.helpers import configure_reasoning
from tests.peers import OpenAIPeer

MODELS = ("gpt-4o-mini", "local-chat", "gpt-4o")
CHANGES = 200
READERS = 4
# Distinct users per reader: together below the cache's bound, so every one of them stays cached.
USERS_PER_READER = 1500


@pytest.fixture
def quick_switching() -> Iterator[None]:
    # Threads switch far more often than the default 5 ms, so that a listener iterating the cache and a
    # request inserting into it interleave within one run of the test.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_every_key_follows_the_last_change_after_a_storm_of_changes_and_requests(
    migrated_database_url: str,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    quick_switching: None,
) -> None:
    # An hour of TTL: only the pushed invalidations (in-process after commit, and LISTEN/NOTIFY on
    # PostgreSQL) can bring cached entries up to date, so a lost one shows as a stale model.
    service = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=3600))
    try:
        configure_reasoning(service, openai_peer)
        seen: set[str] = set()
        seen_lock = threading.Lock()
        stop = threading.Event()
        errors: list[BaseException] = []

        def read(worker: int) -> None:
            count = 0
            try:
                while not stop.is_set():
                    user = f"w{worker}-u{count % USERS_PER_READER}"
                    service.get_llm("reasoning", user_id=user)
                    with seen_lock:
                        seen.add(user)
                    count += 1
            except BaseException as exc:  # surfaced below: a reader must never fail
                errors.append(exc)

        readers = [threading.Thread(target=read, args=(n,)) for n in range(READERS)]
        for thread in readers:
            thread.start()
        for number in range(CHANGES):
            service.config.set_global(
                "reasoning", ConfigUpdate(provider_id="local", model_name=MODELS[number % len(MODELS)]), actor="t"
            )
        stop.set()
        for thread in readers:
            thread.join()
        assert not errors
        assert len(seen) > CHANGES  # the readers really filled the cache meanwhile

        last = MODELS[(CHANGES - 1) % len(MODELS)]
        # Notifications from PostgreSQL arrive on the listener thread; give them a moment to land.
        deadline = time.monotonic() + 5
        while True:
            stale = sorted(u for u in seen if service.get_llm("reasoning", user_id=u).model_name != last)  # type: ignore[attr-defined]
            if not stale or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert stale == [], f"{len(stale)} of {len(seen)} users still get a stale model, e.g. {stale[:3]}"
    finally:
        service.close()
