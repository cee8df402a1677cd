"""The read snapshot: the answers of the configuration's read operations, serialised once and kept current.

The server answers ``GET /config``, ``/config/{type}``, ``/config/summary``, ``/providers``,
``/providers/{id}`` and ``/interaction-types`` from a :class:`ReadSnapshot`: a map from a :data:`Key`
(which :class:`View`, of what) to the JSON document of the answer, as bytes. A hit is one dictionary lookup;
with nothing changed, no answer costs a database round trip.

Current, the way the model cache is (``llmconfig.llm.cache``):

* every committed change this process learns of (its own at once, so a write is visible to the next read;
  on PostgreSQL every replica's, by LISTEN/NOTIFY) drops the answers it can affect (:func:`affects`);
* while other processes' changes are not pushed (SQLite, or the listener is down), at most every ``ttl``
  seconds one read of the revision counter tells whether anything changed; if it did, everything is dropped.

Answers are read outside any lock, and a read that raced with a change is handed out but not kept: every
change bumps a generation, and an answer is only stored if the generation it started in is still current.
Only answers that exist are kept (an unknown id is read again each time), so the snapshot holds at most one
answer per view and configured object (and a provider by its id and by its name).
"""

from __future__ import annotations

import threading
import time
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from llmconfig.config.schemas import ConfigEntry, InteractionTypeInfo
from llmconfig.db.changes import Announcement, Change, ChangeKind, read_revision
from llmconfig.db.engine import transaction
from llmconfig.providers.schemas import ProviderPublic

if TYPE_CHECKING:
    from llmconfig.services import Services


class View(StrEnum):
    """A read operation whose answer the snapshot keeps."""

    CONFIG = "config"  # every global entry, keyed by interaction type
    CONFIG_ENTRY = "config_entry"  # one interaction type's global entry (subject: the type)
    SUMMARY = "summary"  # one line per interaction type
    PROVIDERS = "providers"  # every provider
    PROVIDER = "provider"  # one provider (subject: its id or its name, as asked for)
    INTERACTION_TYPES = "interaction_types"


# (view, subject); the subject is "" for views of everything.
Key = tuple[View, str]

# A safety bound: the views above hold far fewer answers than this on any real configuration.
MAX_ANSWERS = 10_000

# What shows in each view, besides the objects it is named after: entries show their provider's name, the
# summary every type, configured or not.
_CONFIG_VIEWS = frozenset({View.CONFIG, View.CONFIG_ENTRY, View.SUMMARY})
_PROVIDER_VIEWS = frozenset({View.PROVIDERS, View.PROVIDER})
# None of the views shows overrides, tokens or prices.
_UNSEEN = frozenset({ChangeKind.OVERRIDE, ChangeKind.TOKEN, ChangeKind.PRICE})


def affects(change: Change, key: Key) -> bool:
    """Whether ``change`` can alter the answer kept under ``key``; True when unsure."""
    view, subject = key
    kind = change.kind
    if kind in _UNSEEN:
        return False
    if kind is ChangeKind.CONFIG:
        return view in (View.CONFIG, View.SUMMARY) or (view is View.CONFIG_ENTRY and subject == change.subject)
    if kind is ChangeKind.INTERACTION_TYPE:
        return view in (View.INTERACTION_TYPES, View.CONFIG, View.SUMMARY) or (
            view is View.CONFIG_ENTRY and subject == change.subject
        )
    if kind is ChangeKind.PROVIDER:
        # A provider is kept under its id and its name (which the change may have changed), and entries show
        # its name: every view of providers and of the configuration.
        return view in _PROVIDER_VIEWS or view in _CONFIG_VIEWS
    return True  # SECRETS, EVERYTHING, and whatever kind comes next


_CONFIG = TypeAdapter(dict[str, ConfigEntry])
_ENTRY = TypeAdapter(ConfigEntry)
_SUMMARY = TypeAdapter(dict[str, str])
_PROVIDERS = TypeAdapter(list[ProviderPublic])
_PROVIDER = TypeAdapter(ProviderPublic)
_TYPES = TypeAdapter(list[InteractionTypeInfo])


def render(services: Services, key: Key) -> bytes:
    """The answer for ``key`` as JSON, read from the database now; NotFoundError for an unknown subject."""
    view, subject = key
    if view is View.CONFIG:
        return _CONFIG.dump_json(services.config.get_global())
    if view is View.CONFIG_ENTRY:
        return _ENTRY.dump_json(services.config.get_entry(subject))
    if view is View.SUMMARY:
        return _SUMMARY.dump_json({"summary": services.config.summary()})
    if view is View.PROVIDERS:
        return _PROVIDERS.dump_json(services.providers.list())
    if view is View.PROVIDER:
        return _PROVIDER.dump_json(services.providers.get(subject))
    return _TYPES.dump_json(services.types.list())


class ReadSnapshot:
    """The answers of the read views, kept current; thread-safe (one lock for changes, lock-free lookups).

    Subscribe :meth:`apply` to the change feed of ``services`` (``services.changes.subscribe``).
    """

    def __init__(self, services: Services, *, ttl: float) -> None:
        self._services = services
        self._ttl = ttl
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._answers: dict[Key, bytes] = {}
        self._generation = 0
        # The revision every kept answer is current at, and when the counter was last read.
        self._revision: int | None = None
        self._checked_at = float("-inf")

    @property
    def revision(self) -> int | None:
        """The revision the kept answers are current at (None before the first read)."""
        return self._revision

    def __len__(self) -> int:
        return len(self._answers)

    def cached(self, key: Key) -> bytes | None:
        """The kept answer for ``key`` when it is known to be current, without any I/O; None otherwise."""
        answer = self._answers.get(key)
        if answer is not None and self._fresh():
            return answer
        return None

    def answer(self, key: Key) -> bytes:
        """The answer for ``key``: the kept one (after a revision check, if one is due), else read now.

        Blocking: on a miss it reads the database (call it from a worker thread in async code). Raises what
        the read raises (NotFoundError for an unknown subject, DatabaseUnavailableError during an outage).
        """
        if self._answers and not self._fresh():
            self._check_revision()  # with nothing kept there is nothing to drop: the read below notes the revision
        answer = self._answers.get(key)
        if answer is not None:
            return answer
        with self._lock:
            generation = self._generation
        read_at = time.monotonic()
        # One transaction: the services' reads join it, so on SQLite the answer and the revision are one
        # consistent view. The revision is read first, so the answer is at least as new as the revision noted.
        with transaction(self._services.sessions) as session:
            revision = read_revision(session)
            answer = render(self._services, key)
        self._store(key, answer, revision, generation, read_at)
        return answer

    def apply(self, announcement: Announcement) -> None:
        """Drop the answers a committed change can affect (called from the thread that delivers it)."""
        change = announcement.change
        with self._lock:
            if change.kind not in _UNSEEN:
                # Also for answers being read right now, which must not be kept: they may predate the change.
                self._generation += 1
                for key in [key for key in self._answers if affects(change, key)]:
                    del self._answers[key]
            # The next revision after the one every kept answer is current at: with this change applied they are
            # current at it (no other commit came between), and the next revision check finds nothing new.
            revision = announcement.revision
            if revision is not None and self._revision is not None and revision == self._revision + 1:
                self._revision = revision

    def refresh_ahead(self, ahead: float) -> None:
        """Check the revision now if a check would be due within ``ahead`` seconds (blocking).

        For a background refresher: requests then never find a check due, so none waits for one (under load,
        every request arriving during a check would). Nothing happens while changes are pushed.
        """
        if not self._answers or self._services.changes.pushed:
            return
        if time.monotonic() - self._checked_at >= self._ttl - ahead:
            self._check_revision()

    def clear(self) -> None:
        """Forget every answer; the next reads go to the database."""
        with self._lock:
            self._generation += 1
            self._answers.clear()
            self._checked_at = float("-inf")

    # -- internals ---------------------------------------------------------------------------------

    def _fresh(self) -> bool:
        return self._services.changes.pushed or time.monotonic() - self._checked_at <= self._ttl

    def _check_revision(self) -> None:
        # One check at a time: requests that find the TTL run out while a check is in flight wait for it
        # rather than each reading the counter (under load, that would be one read per request).
        if not self._checking.acquire(blocking=False):
            with self._checking:
                pass
            if self._fresh():
                return
            self._checking.acquire()  # the check in flight failed (an outage): this one reports it
        try:
            read_at = time.monotonic()
            revision = self._services.resolver.revision()
            with self._lock:
                if revision != self._revision:
                    self._generation += 1
                    self._answers.clear()
                    self._revision = revision
                self._checked_at = max(self._checked_at, read_at)
        finally:
            self._checking.release()

    def _store(self, key: Key, answer: bytes, revision: int, generation: int, read_at: float) -> None:
        pushed = self._services.changes.pushed
        with self._lock:
            if self._revision is None or revision > self._revision:
                # Newer than anything kept. Unless every change is pushed (and so dropped answer by answer),
                # what was kept before may be stale.
                if self._revision is not None and not pushed:
                    self._generation += 1
                    self._answers.clear()
                self._revision = revision
            if revision < self._revision:
                return  # read before a newer revision was seen: handed out, not kept
            self._checked_at = max(self._checked_at, read_at)
            if generation == self._generation:
                if len(self._answers) >= MAX_ANSWERS:
                    self._answers.clear()
                self._answers[key] = answer
