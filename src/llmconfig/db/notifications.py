"""Committed changes, delivered to whoever in this process keeps something derived from the configuration.

A :class:`ChangeFeed` hands each :class:`~llmconfig.db.changes.Announcement` to its subscribers:

* this process's own changes, right after their transaction commits (so a process sees its own writes at
  once, without waiting for a notification or the next revision check);
* on PostgreSQL, every process's changes: a :class:`ChangeListener` keeps one dedicated connection
  LISTENing for the ``NOTIFY`` that :func:`~llmconfig.db.changes.record_change` sends, within milliseconds of
  the commit.

A change of this process reaches it both ways; it is delivered once (the recent announcements are remembered by
revision), so that nothing derived from it is dropped a second time after being read again.

If the listening connection drops, announcements made meanwhile are lost; the listener therefore reconnects
with backoff and then delivers :data:`~llmconfig.db.changes.RESYNC`, so no change is missed. While it is down
(and always on SQLite, where other processes cannot push), ``pushed`` is false and subscribers check the
revision counter instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.changes import CHANGES_CHANNEL, PENDING_KEY, RESYNC, Announcement

log = logging.getLogger("llmconfig.notifications")

Subscriber = Callable[[Announcement], None]

KEEPALIVE_SECONDS = 10.0
# Announcements remembered to deliver each once: a commit's NOTIFY comes back within milliseconds.
RECENT = 256
# How the listening connections show in pg_stat_activity.
APPLICATION_NAME = "llmconfig-listener"


def libpq_conninfo(url: URL) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg`` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeFeed:
    """Delivers every committed change to the subscribers of this process; see the module docstring.

    Subscribers run on the thread that delivers (a committing thread, or the listener thread): they must be
    quick and thread-safe. One that raises is logged and does not stop delivery to the others.
    """

    def __init__(self, engine: Engine, sessions: sessionmaker[Session], *, listen: bool = True) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        self._listener: ChangeListener | None = None
        # The announcements delivered last (each has its revision), oldest first, and as a set.
        self._order: deque[Announcement] = deque(maxlen=RECENT)
        self._delivered: set[Announcement] = set()
        # Started by the first subscriber: a process that only writes (a CLI command) needs no listening thread.
        self._listen_url = engine.url if listen and engine.dialect.name == "postgresql" else None
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_soft_rollback", self._after_rollback)

    @property
    def pushed(self) -> bool:
        """Whether other processes' changes reach this one by notification right now (PostgreSQL, listener up)."""
        return self._listener is not None and self._listener.healthy

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)
            if self._listen_url is not None and self._listener is None:
                self._listener = ChangeListener(self._listen_url, self.deliver).start()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s != subscriber)

    def deliver(self, announcement: Announcement) -> None:
        if announcement.revision is not None:
            with self._lock:
                if announcement in self._delivered:
                    return  # this process's own commit, delivered at commit and now by its NOTIFY
                if len(self._order) == self._order.maxlen:
                    self._delivered.discard(self._order[0])
                self._order.append(announcement)
                self._delivered.add(announcement)
        for subscriber in self._subscribers:  # a tuple replaced on subscribe: safe to iterate unlocked
            try:
                subscriber(announcement)
            except Exception:  # one faulty subscriber must not starve the others or kill the listener
                log.exception("change subscriber failed for %s", announcement.change.encode())

    def close(self) -> None:
        with self._lock:
            listener, self._listener, self._listen_url = self._listener, None, None
        if listener is not None:
            listener.stop()

    def _after_commit(self, session: Session) -> None:
        for announcement in session.info.pop(PENDING_KEY, []):
            self.deliver(announcement)

    @staticmethod
    def _after_rollback(session: Session, _previous: object) -> None:
        session.info.pop(PENDING_KEY, None)


class ChangeListener:
    """A daemon thread that LISTENs on the changes channel and calls ``on_change`` for each announcement.

    ``on_change(RESYNC)`` means "anything may have changed": it is sent after every (re)connection.
    ``healthy`` is true while the connection is up.
    """

    def __init__(
        self,
        url: URL,
        on_change: Subscriber,
        *,
        connect_timeout: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._conninfo = libpq_conninfo(url)
        self._on_change = on_change
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmconfig-listen", daemon=True)

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=max(1, int(self._connect_timeout)),
                    application_name=APPLICATION_NAME,
                ) as connection:
                    connection.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self._connected.set()
                    backoff = 0.1
                    # Whatever happened while we were not listening is unknown: start from scratch.
                    self._on_change(RESYNC)
                    self._listen(connection)
            except psycopg.Error as exc:
                if self._connected.is_set():
                    log.warning("Lost the change notifications connection (%s); reconnecting", type(exc).__name__)
            finally:
                self._connected.clear()
            if self._stop.wait(backoff):
                return
            backoff = min(self._max_backoff, backoff * 2)

    def _listen(self, connection: psycopg.Connection[tuple[object, ...]]) -> None:
        idle_since = time.monotonic()
        while not self._stop.is_set():
            # Wakes up regularly to notice stop(); a connection the server closed raises here.
            for notify in connection.notifies(timeout=0.5):
                self._on_change(Announcement.from_json(notify.payload))
                idle_since = time.monotonic()
            if time.monotonic() - idle_since > KEEPALIVE_SECONDS:
                # A silent network partition would otherwise go unnoticed.
                connection.execute("SELECT 1")
                idle_since = time.monotonic()
