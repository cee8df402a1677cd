"""Pushed cache invalidation on PostgreSQL: LISTEN for the changes every write announces.

Each committed change sends ``NOTIFY llmconfig_changes, '<what changed>'`` (see
:func:`llmconfig.db.engine.bump_revision`). A :class:`ChangeListener` keeps one dedicated connection
listening and hands each announcement to its callback within milliseconds of the commit, so processes
drop exactly the cached entries that changed instead of polling.

If the listening connection drops, announcements made meanwhile are lost; the listener therefore
reconnects with backoff and then asks for a full resync, so no change is missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import URL

from llmconfig.db.engine import CHANGES_CHANNEL

log = logging.getLogger("llmconfig.invalidation")

RESYNC = "*"
KEEPALIVE_SECONDS = 10.0
# How the listening connections show in pg_stat_activity.
APPLICATION_NAME = "llmconfig-listener"


def libpq_conninfo(url: URL) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg`` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """A daemon thread that LISTENs on the changes channel and calls ``on_change`` for each announcement.

    ``on_change(RESYNC)`` means "anything may have changed": it is sent after every (re)connection.
    ``healthy`` is true while the connection is up; callers fall back to polling while it is not.
    """

    def __init__(
        self,
        url: URL,
        on_change: Callable[[str], None],
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
        self.backend_pid: int | None = None

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

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
                    self.backend_pid = connection.info.backend_pid
                    self._connected.set()
                    backoff = 0.1
                    # Whatever happened while we were not listening is unknown: start from scratch.
                    self._deliver(RESYNC)
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
                self._deliver(notify.payload)
                idle_since = time.monotonic()
            if time.monotonic() - idle_since > KEEPALIVE_SECONDS:
                # A silent network partition would otherwise go unnoticed.
                connection.execute("SELECT 1")
                idle_since = time.monotonic()

    def _deliver(self, payload: str) -> None:
        try:
            self._on_change(payload)
        except Exception:  # a faulty callback must not kill the listener
            log.exception("change callback failed for %r", payload)
