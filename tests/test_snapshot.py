"""The read snapshot under concurrency and races: no change is lost, a read that raced with one is not kept.

The snapshot itself, without HTTP (tests/api/test_read_snapshot.py covers the endpoints), on SQLite and
PostgreSQL, with a TTL of an hour: only announced changes can bring kept answers up to date.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.db.changes import Announcement, Change, ChangeKind
from llmconfig.services import Services
from llmconfig.settings import Settings
from llmconfig.snapshot import Key, ReadSnapshot, View, affects
from tests.helpers import configure_reasoning
from tests.peers import OpenAIPeer

HOUR = 3600.0
MODELS = ("gpt-4o-mini", "local-chat", "gpt-4o")


def pushed_service(settings: Settings) -> LLMConfigService:
    """A service whose change listener (PostgreSQL) is connected and has delivered its first resync.

    The resync drops every snapshot; waiting for it keeps it from landing in the middle of a test.
    """
    services = Services.from_settings(settings)
    resynced = threading.Event()

    def note(announcement: Announcement) -> None:
        if announcement.change.kind is ChangeKind.EVERYTHING:
            resynced.set()

    services.changes.subscribe(note)  # the first subscriber starts the listener
    if services.engine.dialect.name == "postgresql":
        assert resynced.wait(30), "the change listener did not connect"
    return LLMConfigService(services=services)


@pytest.fixture
def configured(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> Iterator[tuple[LLMConfigService, ReadSnapshot]]:
    service = pushed_service(settings_factory(database_url=migrated_database_url, cache_ttl=HOUR))
    try:
        configure_reasoning(service, openai_peer)
        snapshot = ReadSnapshot(service.services, ttl=HOUR)
        service.services.changes.subscribe(snapshot.apply)
        yield service, snapshot
    finally:
        service.services.close()


def model_of(snapshot: ReadSnapshot, key: Key = (View.CONFIG, "")) -> str:
    document: Any = json.loads(snapshot.answer(key))
    entry = document["reasoning"] if key[0] is View.CONFIG else document
    return str(entry["model_name"])


def set_model(service: LLMConfigService, model: str) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name=model), actor="t")


def test_an_answer_read_while_a_change_commits_is_handed_out_but_not_kept(
    configured: tuple[LLMConfigService, ReadSnapshot],
) -> None:
    service, snapshot = configured
    key: Key = (View.CONFIG, "")
    reader_thread: list[int] = []
    paused, go = threading.Event(), threading.Event()

    def pause_reader(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Before the first read of the entries: the revision is read, and on SQLite the read transaction began.
        if threading.get_ident() in reader_thread and "global_configs" in statement and not paused.is_set():
            paused.set()
            assert go.wait(30)

    handed_out: list[str] = []

    def read() -> None:
        reader_thread.append(threading.get_ident())
        handed_out.append(model_of(snapshot, key))

    event.listen(service.engine, "before_cursor_execute", pause_reader)
    try:
        reader = threading.Thread(target=read)
        reader.start()
        assert paused.wait(30)
        set_model(service, "gpt-4o-mini")  # commits (and is announced) while the reader is between its reads
        go.set()
        reader.join(30)
    finally:
        event.remove(service.engine, "before_cursor_execute", pause_reader)

    assert handed_out and handed_out[0] in ("gpt-4o", "gpt-4o-mini")  # SQLite: its snapshot; PostgreSQL: newest
    kept = snapshot.cached(key)
    assert kept is None or json.loads(kept)["reasoning"]["model_name"] == "gpt-4o-mini"
    assert model_of(snapshot, key) == "gpt-4o-mini"


@pytest.fixture
def quick_switching() -> Iterator[None]:
    # Threads switch far more often than the default 5 ms, so that delivering a change and storing an answer
    # interleave within one run of the test.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_every_view_follows_the_last_change_after_a_storm_of_changes_and_reads(
    configured: tuple[LLMConfigService, ReadSnapshot], quick_switching: None
) -> None:
    service, snapshot = configured
    keys: list[Key] = [(View.CONFIG, ""), (View.CONFIG_ENTRY, "reasoning"), (View.SUMMARY, "")]
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def read(seed: int) -> None:
        nonlocal reads
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                snapshot.answer(rng.choice(keys))
                reads += 1
        except BaseException as exc:  # surfaced below: a reader must never fail
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(n,)) for n in range(4)]
    for thread in readers:
        thread.start()
    changes = 60
    for number in range(changes):
        set_model(service, MODELS[number % len(MODELS)])
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors
    assert reads > changes

    last = MODELS[(changes - 1) % len(MODELS)]
    # Notifications from PostgreSQL arrive on the listener thread; give them a moment to land.
    deadline = time.monotonic() + 5
    while model_of(snapshot) != last and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model_of(snapshot) == last
    assert model_of(snapshot, (View.CONFIG_ENTRY, "reasoning")) == last
    assert f"local / {last} " in json.loads(snapshot.answer((View.SUMMARY, "")))["summary"]


def test_when_changes_are_not_pushed_a_newer_revision_drops_every_kept_answer(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> None:
    """SQLite, or PostgreSQL without its listener: a commit by another process is found by the revision check."""
    writer = LLMConfigService(settings_factory(database_url=migrated_database_url))
    reader = Services.from_settings(settings_factory(database_url=migrated_database_url, listen_for_changes=False))
    try:
        configure_reasoning(writer, openai_peer)
        snapshot = ReadSnapshot(reader, ttl=0)  # a revision check before every answer
        reader.changes.subscribe(snapshot.apply)
        assert not reader.changes.pushed
        for key in ((View.CONFIG, ""), (View.CONFIG_ENTRY, "reasoning")):
            assert model_of(snapshot, key) == "gpt-4o"
        set_model(writer, "gpt-4o-mini")
        assert model_of(snapshot, (View.CONFIG_ENTRY, "reasoning")) == "gpt-4o-mini"
        assert model_of(snapshot) == "gpt-4o-mini"
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize(
    ("change", "dropped"),
    [
        (Change.config("reasoning"), {View.CONFIG, View.SUMMARY, (View.CONFIG_ENTRY, "reasoning")}),
        (Change.override("u-1", "reasoning"), set()),
        (Change.token("t"), set()),
        (Change.price("gpt-4o"), set()),
        (
            Change.interaction_type("reasoning"),
            {View.INTERACTION_TYPES, View.CONFIG, View.SUMMARY, (View.CONFIG_ENTRY, "reasoning")},
        ),
        (
            Change.provider("p"),
            {View.PROVIDERS, View.PROVIDER, View.CONFIG, View.SUMMARY, View.CONFIG_ENTRY},
        ),
        (Change.secrets("local-master-key"), set(View)),
        (Change.everything(), set(View)),
    ],
)
def test_a_change_drops_what_it_can_affect_and_nothing_else(change: Change, dropped: set[Any]) -> None:
    keys: list[Key] = [
        (View.CONFIG, ""),
        (View.CONFIG_ENTRY, "reasoning"),
        (View.CONFIG_ENTRY, "tools"),
        (View.SUMMARY, ""),
        (View.PROVIDERS, ""),
        (View.PROVIDER, "p"),
        (View.PROVIDER, "other"),
        (View.INTERACTION_TYPES, ""),
    ]
    for key in keys:
        expected = key[0] in dropped or key in dropped
        assert affects(change, key) is expected, key
