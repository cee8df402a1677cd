"""The model cache: resolutions turned into LangChain objects once, reused, and kept fresh.

Four maps, one lock:

* ``_hot`` maps ``(interaction type, user id, kind)`` to the object last handed out for it, with the
  resolution it came from; a warm ``get_llm`` is one lookup here;
* ``_objects`` maps a :class:`~llmconfig.config.resolution.Resolution` to the provider object built for it,
  so users who resolve alike, and unchanged entries after an invalidation, share one SDK client;
* ``_tracked`` maps (resolution, the user's groups, user id) to what that user gets: the object with the user's
  usage tracking attached (of the user's variant, when the entry has variants);
* ``_last_good`` keeps, for every key, the last object served: what to serve while the source is down.

Every change to these maps, and every walk over one, happens under ``_lock``; the hot path reads ``_hot``
with a single ``dict.get`` and takes no lock. Resolving (a database read or an HTTP request) happens
outside any lock, so the listener thread delivering a change never waits for a slow resolution, and a
resolution that raced with a change is not cached: every change bumps ``_generation``, and a result is only
stored if the generation it started in is still current.

Freshness: pushed changes drop exactly the entries they affect (see :meth:`ModelCache.apply`); each entry keeps
the resolution it came from, with the user's groups, so that a change to a group's entry drops only its
members' entries of that type, and a change to a user's groups only that user's. When changes
are not pushed (SQLite, or the listener is down), at most every ``ttl`` seconds one read of the revision
counter tells whether anything changed, and if it did the whole cache is dropped.

A cache made with ``refill=N`` (the server's resolve payloads) also remembers up to N of the entries each change
dropped, for :meth:`ModelCache.refill` to resolve again before the change is relayed to client processes: every
client that held the entry asks for it at once, and each then finds it resolved rather than all of them reading
the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from llmconfig.config.resolution import Resolution
from llmconfig.db.changes import Announcement, ChangeKind
from llmconfig.errors import ConfigUnavailableError, LLMConfigError
from llmconfig.llm.sources import ResolutionSource

log = logging.getLogger("llmconfig.llm")

Kind = Literal["chat", "embeddings"]
# (interaction type, user id, the kind asked for: None takes whatever the type is, as the resolve endpoint does)
HotKey = tuple[str, str | None, Kind | None]

# Bounds memory when many distinct user ids pass through one process.
MAX_ENTRIES = 10_000

K = TypeVar("K")
V = TypeVar("V")


class Materialiser(Protocol):
    """Turns resolutions into what the cache hands out (LangChain objects, or resolve payloads on the server)."""

    def build(self, resolution: Resolution) -> Any:
        """The object shared by every caller whose request resolves to ``resolution``."""
        ...

    def tracked(self, built: Any, resolution: Resolution, user_id: str | None) -> Any:
        """What one caller gets: ``built`` with that caller's usage tracking attached, or ``built`` itself."""
        ...

    def from_environment(
        self, interaction_type: str, kind: Kind | None, *, reason: str, unreachable: bool = False
    ) -> Any:
        """What to hand out when nothing is configured (or the source is down and nothing was served yet)."""
        ...


@dataclass(frozen=True, slots=True)
class _Hot:
    value: Any
    # None for the environment fallback and for last-known-good answers during an outage.
    resolution: Resolution | None
    provider_ids: frozenset[str] = frozenset()


class ModelCache:
    """Hands out the LangChain object for a key, resolving it from ``source`` on a miss; thread-safe."""

    def __init__(self, source: ResolutionSource, builder: Materialiser, *, ttl: float, refill: int = 0) -> None:
        self._source = source
        self._builder = builder
        self._ttl = ttl
        self._lock = threading.Lock()
        # Building objects is serialised so that one resolution is built once; it never holds ``_lock``.
        self._build_lock = threading.Lock()
        self._hot: dict[HotKey, _Hot] = {}
        self._objects: dict[Resolution, Any] = {}
        self._tracked: dict[tuple[Resolution, tuple[str, ...], str | None], Any] = {}
        self._last_good: dict[HotKey, Any] = {}
        self._generation = 0
        self._revision: int | None = None
        self._checked_at = float("-inf")
        self._outage_logged = False
        # Entries dropped by changes, to resolve again (an ordered set, at most ``refill`` of them).
        self._refill_limit = refill
        self._to_refill: dict[HotKey, None] = {}
        source.subscribe(self.apply)

    # -- reading ------------------------------------------------------------------------------------

    @property
    def revision(self) -> int | None:
        """The newest revision this cache has read; what it serves is current as of it."""
        return self._revision

    def get(self, key: HotKey) -> Any:
        """The object for ``key``: a dictionary lookup when it is cached and known to be fresh."""
        hot = self._hot.get(key)
        if hot is not None:
            if self._fresh():
                return hot.value
            self._check_revision()
            hot = self._hot.get(key)
            if hot is not None:
                return hot.value
        return self._load(key)

    def cached(self, key: HotKey) -> Any | None:
        """The object for ``key`` when it is cached and known to be fresh, without any I/O; None otherwise."""
        hot = self._hot.get(key)
        return hot.value if hot is not None and self._fresh() else None

    async def aget(self, key: HotKey) -> Any:
        """Async twin of :meth:`get`: a fresh hit returns at once, a miss resolves in a worker thread."""
        hot = self._hot.get(key)
        if hot is not None and self._fresh():
            return hot.value
        return await asyncio.to_thread(self.get, key)

    # -- changes -----------------------------------------------------------------------------------

    def apply(self, announcement: Announcement) -> None:
        """Drop the entries a committed change can affect (called from the thread that delivers it)."""
        change = announcement.change
        with self._lock:
            # The next revision after the newest one read: with this change applied, what is kept is current at it
            # (no other commit came between), and the next read of that revision finds nothing new to drop.
            revision = announcement.revision
            if revision is not None and self._revision is not None and revision == self._revision + 1:
                self._revision = revision
            if change.kind in (ChangeKind.TOKEN, ChangeKind.PRICE, ChangeKind.SPEND):
                return  # none changes what an object is built from (spend is checked on every call)
            self._generation += 1
            if change.kind in (ChangeKind.CONFIG, ChangeKind.INTERACTION_TYPE):
                doomed = [key for key in self._hot if key[0] == change.subject]
            elif change.kind is ChangeKind.OVERRIDE:
                doomed = [key for key in self._hot if key[0] == change.subject and key[1] == change.user_id]
            elif change.kind is ChangeKind.MEMBERSHIP:
                doomed = [key for key in self._hot if key[1] == change.user_id]
            elif change.kind in (ChangeKind.GROUP_CONFIG, ChangeKind.GROUP):
                # The group's members, by the groups each entry was resolved with. Entries without a resolution
                # (the environment fallback) do not know their user's groups: they go too.
                group = change.group if change.kind is ChangeKind.GROUP_CONFIG else change.subject
                doomed = [
                    key
                    for key, hot in self._hot.items()
                    if key[1] is not None
                    and (change.kind is ChangeKind.GROUP or key[0] == change.subject)
                    and (hot.resolution is None or group in hot.resolution.groups)
                ]
            elif change.kind is ChangeKind.PROVIDER:
                doomed = [key for key, hot in self._hot.items() if change.subject in hot.provider_ids]
            else:
                doomed = list(self._hot)
            for key in doomed:
                del self._hot[key]
            self._note_refill(doomed)

    @property
    def refill_due(self) -> bool:
        """Whether changes dropped entries that :meth:`refill` would resolve again."""
        return bool(self._to_refill)

    def refill(self) -> list[HotKey]:
        """Resolve again the entries the latest changes dropped (blocking: call it from a worker thread).

        Returns the keys that are cached again, whoever resolved them. An entry that cannot be resolved now
        (nothing configured any more, an outage) is left to the next caller, who gets the error or the fallback
        as usual.
        """
        with self._lock:
            keys, self._to_refill = list(self._to_refill), {}
        refilled: list[HotKey] = []
        for key in keys:
            if key not in self._hot:  # else a caller resolved it first
                try:
                    self.get(key)
                except LLMConfigError as exc:
                    log.debug("not resolved again after a change: %s: %s", key, exc)
                    continue
            refilled.append(key)
        return refilled

    def invalidate(self) -> None:
        """Forget every resolution; the next call reads the configuration again."""
        with self._lock:
            self._generation += 1
            self._hot.clear()
            self._checked_at = float("-inf")

    def clear(self) -> None:
        """Forget everything, including the objects kept for outages."""
        self.invalidate()
        with self._lock, self._build_lock:
            self._objects.clear()
            self._tracked.clear()
            self._last_good.clear()

    # -- internals ---------------------------------------------------------------------------------

    def _note_refill(self, dropped: list[HotKey]) -> None:
        # Callers hold ``_lock``. Global entries first: every client that has no override shares them.
        room = self._refill_limit - len(self._to_refill)
        if room <= 0 or not dropped:
            return
        for key in sorted(dropped, key=lambda key: key[1] is not None)[:room]:
            self._to_refill[key] = None

    def _fresh(self) -> bool:
        return self._source.pushed or time.monotonic() - self._checked_at <= self._ttl

    def _check_revision(self) -> None:
        try:
            revision = self._source.revision()
        except ConfigUnavailableError as exc:
            self._note_outage(exc)
            # Keep serving what we have; try again after another TTL.
            self._checked_at = time.monotonic()
            return
        self._note_recovery()
        with self._lock:
            if revision != self._revision:
                self._generation += 1
                self._hot.clear()
                self._revision = revision
            self._checked_at = time.monotonic()

    def _load(self, key: HotKey) -> Any:
        interaction_type, user_id, kind = key
        with self._lock:
            generation = self._generation
        try:
            resolution, revision = self._source.resolve(interaction_type, user_id)
        except ConfigUnavailableError as exc:
            self._note_outage(exc)
            outage: ConfigUnavailableError | None = exc
        else:
            outage = None
        if outage is not None:
            # Outside the except block: an error raised here stands on its own, without the outage chained.
            last_good = self._last_good_for(key)
            if last_good is not None:
                return last_good
            reason = f"{outage.what} is unreachable ({outage.detail or outage})"
            return self._builder.from_environment(interaction_type, kind, reason=reason, unreachable=True)
        self._note_recovery()
        if resolution is None:
            value = self._builder.from_environment(
                interaction_type, kind, reason=f"nothing is configured for {interaction_type!r}"
            )
            self._store(key, _Hot(value, None), revision, generation)
            return value
        if kind is not None and resolution.kind != kind:
            other = "get_embeddings()" if resolution.kind == "embeddings" else "get_llm()"
            raise LLMConfigError(
                f"{interaction_type!r} is a {resolution.kind} interaction type; ask for it with {other}"
            )
        value = self._materialise(resolution, user_id)
        self._store(key, _Hot(value, resolution, resolution.provider_ids), revision, generation)
        return value

    def _materialise(self, resolution: Resolution, user_id: str | None) -> Any:
        with self._build_lock:
            tracked_key = (resolution, resolution.groups, user_id)
            tracked = self._tracked.get(tracked_key)
            if tracked is not None:
                return tracked
            built = self._objects.get(resolution)
            if built is None:
                built = self._builder.build(resolution)
                _bounded(self._objects)[resolution] = built
            tracked = self._builder.tracked(built, resolution, user_id)
            _bounded(self._tracked)[tracked_key] = tracked
            return tracked

    def _store(self, key: HotKey, hot: _Hot, revision: int, generation: int) -> None:
        pushed = self._source.pushed
        with self._lock:
            if self._revision is None or revision > self._revision:
                # Newer than anything seen. Unless every change is pushed (and so dropped entry by entry), what
                # was cached before may be stale.
                if self._revision is not None and not pushed:
                    self._generation += 1
                    self._hot.clear()
                self._revision = revision
            self._checked_at = time.monotonic()
            if hot.resolution is not None:
                _bounded(self._last_good)[key] = hot.value
            # A change arrived while this was resolved, or this was read before a newer revision: not cached.
            if generation == self._generation and revision >= self._revision:
                _bounded(self._hot)[key] = hot

    def _last_good_for(self, key: HotKey) -> Any:
        """What to serve for ``key`` during an outage: its own last object, else the type's global one.

        A user never seen before most likely has no override, so the global entry is the best guess.
        """
        interaction_type, _, kind = key
        with self._lock:
            for candidate in (key, (interaction_type, None, kind)):
                if candidate in self._last_good:
                    return self._last_good[candidate]
            return next((obj for (t, _, k), obj in self._last_good.items() if (t, k) == (interaction_type, kind)), None)

    def _note_outage(self, exc: Exception) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            log.error("%s; serving the last known configuration until it is back", exc)

    def _note_recovery(self) -> None:
        if self._outage_logged:
            self._outage_logged = False
            log.warning("The configuration is reachable again")


def _bounded(mapping: dict[K, V]) -> dict[K, V]:
    """``mapping``, emptied first when it is full (callers hold the lock that guards it)."""
    if len(mapping) >= MAX_ENTRIES:
        mapping.clear()
    return mapping
