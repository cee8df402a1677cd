"""The typed change seam: what a write announces is exactly what a listener decodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from llmconfig.db.changes import RESYNC, Announcement, Change, ChangeKind
from llmconfig.db.notifications import ChangeFeed


@pytest.mark.parametrize(
    "change",
    [
        Change.config("reasoning"),
        Change.override("u-42", "tools"),
        Change.override("team/alice", "tools"),  # a user id may contain '/'
        Change.interaction_type("summaries"),
        Change.provider("0b1e0d52-6f0e-4b8e-9d0a-000000000001"),
        Change.token("t-1"),
        Change.price("gpt-4o"),
        Change.secrets("local-master-key"),
        Change.everything(),
    ],
)
def test_every_change_survives_its_wire_form(change: Change) -> None:
    assert Change.decode(change.encode()) == change
    announcement = Announcement(change, 7)
    assert Announcement.from_json(announcement.to_json()) == announcement


def test_audit_targets_keep_the_shapes_history_reads() -> None:
    assert Change.config("reasoning").audit_target == ("config", "reasoning")
    assert Change.override("u-42", "tools").audit_target == ("override", "u-42/tools")
    assert Change.provider("p-1").audit_target == ("provider", "p-1")


@pytest.mark.parametrize("payload", ["", "garbage", '{"change": 3}', "[]", '{"revision": 4}', "bogus:thing"])
def test_anything_unrecognised_means_everything(payload: str) -> None:
    assert Announcement.from_json(payload).change.kind is ChangeKind.EVERYTHING
    assert Change.decode(payload).kind is ChangeKind.EVERYTHING


def test_a_change_delivered_twice_reaches_subscribers_once(tmp_path: Path) -> None:
    # A process's own change comes at commit and again by its NOTIFY: derived state must not be dropped twice.
    engine = create_engine(f"sqlite:///{tmp_path / 'feed.db'}")
    feed = ChangeFeed(engine, sessionmaker(engine), listen=False)
    seen: list[Announcement] = []
    feed.subscribe(seen.append)
    change = Announcement(Change.config("reasoning"), 7)
    feed.deliver(change)
    feed.deliver(change)
    feed.deliver(Announcement(Change.config("reasoning"), 8))
    feed.deliver(RESYNC)
    feed.deliver(RESYNC)  # no revision: every one of these counts
    assert seen == [change, Announcement(Change.config("reasoning"), 8), RESYNC, RESYNC]
    engine.dispose()
