"""``GET /api/v1/llm/changes``: committed changes relayed to client-mode processes as Server-Sent Events.

Each change is one event whose ``id`` is the revision it committed at::

    id: 42
    event: change
    data: {"change":"config:reasoning","revision":42}

A change that dropped the global resolution of some interaction types carries the new ones, as ``/resolve``
answers them, for the types the client's token covers::

    data: {"change":"config:reasoning","revision":42,"resolved":{"reasoning":{...}}}

A client installs them instead of asking ``/resolve`` again, so that a change reaches its ``get_llm`` in one
trip from the server instead of two. They are sent only while the token snapshot holds the stream's token as
valid; a stream whose token it finds revoked is ended at the next change that carries any.

``event: resync`` tells a client that changes may have been missed, so it must drop everything it resolved.
A comment line keeps idle connections open through proxies. A client that reconnects sends the last id it
saw as ``Last-Event-ID``; the changes it missed are replayed from a window of recent ones, or, when that
window does not reach back far enough, it gets ``resync``.

Before a change is relayed, the resolve payloads it dropped are resolved again (``refill``, bounded by
:data:`REFILL_WAIT`): the global ones travel with the event, and the clients that held the others (users'
resolutions) ask for them as soon as the event arrives, and then find them ready instead of each reading the
database at once.

What reaches the stream is what the process's change feed delivers: its own commits and, on PostgreSQL,
every replica's (LISTEN/NOTIFY). Changes the feed cannot push (on SQLite, another process's writes; on
PostgreSQL, those made while the listener was reconnecting) are found by polling the revision counter, and
announced as ``resync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from llmconfig.db.changes import Announcement, ChangeKind
from llmconfig.errors import ConfigUnavailableError
from llmconfig.llm.cache import HotKey
from llmconfig.services import Services

log = logging.getLogger("llmconfig.api")

# Recent changes kept for clients that reconnect with Last-Event-ID.
HISTORY = 1024
# Per client: a client this far behind is told to resync instead of being sent every change.
CLIENT_BACKLOG = 256
KEEPALIVE = b": keep-alive\n\n"
# How long a change waits for its refill before it is relayed anyway (a slow or unreachable database).
REFILL_WAIT = 0.25


class Refilling(Protocol):
    """What the stream asks before relaying a change: the server's resolve payloads (``ModelCache``)."""

    @property
    def refill_due(self) -> bool: ...

    def refill(self) -> list[HotKey]: ...


def change_event(announcement: Announcement, resolved: dict[str, bytes] | None = None) -> bytes:
    data = announcement.to_json().encode()
    if resolved:
        # The payloads are JSON already (serialised once, for /resolve too): spliced into the object as they are.
        members = b",".join(json.dumps(name).encode() + b":" + body for name, body in sorted(resolved.items()))
        data = data[:-1] + b',"resolved":{' + members + b"}}"
    if announcement.revision is None:  # known only to this process (a budget became spent): nothing to resume
        return b"event: change\ndata: " + data + b"\n\n"
    return b"id: %d\nevent: change\ndata: " % announcement.revision + data + b"\n\n"


def resync_event(revision: int) -> bytes:
    return f'id: {revision}\nevent: resync\ndata: {{"revision":{revision}}}\n\n'.encode()


class _Client:
    def __init__(self, token: str | None) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=CLIENT_BACKLOG)
        self.overflowed = False
        # Checked again at each change that carries resolutions: each client gets those its token covers now.
        self.token = token


class ChangeStream:
    """Relays the change feed of one process to every connected client; runs on the server's event loop."""

    def __init__(
        self,
        services: Services,
        *,
        heartbeat: float,
        poll_interval: float = 0.25,
        payloads: Refilling | None = None,
        resolved: Callable[[str], bytes | None] | None = None,
    ) -> None:
        self._services = services
        self._payloads = payloads
        # The global resolution of a type as /resolve answers it, when it is cached (no I/O).
        self._resolved = resolved
        # The types whose global resolution the refill under way made ready, sent with the next change.
        self._refilled: set[str] = set()
        # Changes that arrived while a refill was under way, relayed in order once it ends.
        self._waiting: list[Announcement] = []
        self._refilling: asyncio.Task[None] | None = None
        self._heartbeat = heartbeat
        self._poll_interval = poll_interval
        self._clients: set[_Client] = set()
        self._recent: deque[Announcement] = deque(maxlen=HISTORY)
        # The newest revision known here, and the oldest one from which the window of recent changes is whole.
        self._latest = 0
        self._floor = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin relaying (at application start-up, on the loop that serves the streams)."""
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(ConfigUnavailableError):
            self._latest = self._floor = await asyncio.to_thread(self._services.resolver.revision)
        self._services.changes.subscribe(self._from_feed)
        self._poller = asyncio.create_task(self._poll(), name="llmconfig-change-poll")

    async def close(self) -> None:
        """End every stream (at shutdown); clients reconnect elsewhere with their Last-Event-ID."""
        self._services.changes.unsubscribe(self._from_feed)
        if self._refilling is not None:
            self._refilling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refilling
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for client in self._clients:
            self._offer(client, None)
        self._loop = None

    async def events(self, last_event_id: int | None, *, token: str | None = None) -> AsyncIterator[bytes]:
        """The stream of one client: what it missed since ``last_event_id``, then every change as it comes.

        ``token``: the listener's; changes carry the resolutions of the types it covers (none without one).
        """
        client = _Client(token)
        self._clients.add(client)
        try:
            yield b"retry: 1000\n: connected\n\n"
            for missed in self._catch_up(last_event_id):
                yield missed
            while True:
                if client.overflowed:
                    client.overflowed = False
                    while not client.queue.empty():
                        client.queue.get_nowait()
                    yield resync_event(self._latest)
                try:
                    event = await asyncio.wait_for(client.queue.get(), timeout=self._heartbeat)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if event is None:
                    return
                yield event
        finally:
            self._clients.discard(client)

    # -- internals ---------------------------------------------------------------------------------

    def _catch_up(self, last_event_id: int | None) -> list[bytes]:
        if last_event_id is None or last_event_id == self._latest:
            return []
        missed = sorted(
            (a for a in self._recent if a.revision is not None and a.revision > last_event_id),
            key=lambda a: a.revision or 0,
        )
        whole = self._floor <= last_event_id < self._latest and [a.revision for a in missed] == list(
            range(last_event_id + 1, self._latest + 1)
        )
        return [change_event(a) for a in missed] if whole else [resync_event(self._latest)]

    def _from_feed(self, announcement: Announcement) -> None:
        # Called on whichever thread delivers the change (a committing request, the listener thread).
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._arrived, announcement)

    def _arrived(self, announcement: Announcement) -> None:
        self._waiting.append(announcement)
        if self._refilling is not None:
            return  # relayed after the refill under way, in order
        if self._payloads is not None and self._payloads.refill_due:
            self._refilling = asyncio.get_running_loop().create_task(self._refill(self._payloads))
        else:
            self._relay_waiting()

    async def _refill(self, payloads: Refilling) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REFILL_WAIT
        try:
            # Again while changes that arrived meanwhile dropped more, within the one bound.
            while payloads.refill_due and (left := deadline - loop.time()) > 0:
                refilled = await asyncio.wait_for(asyncio.to_thread(payloads.refill), left)
                self._refilled.update(name for name, user_id, kind in refilled if user_id is None and kind is None)
        except TimeoutError:
            log.warning("resolving again what a change dropped took over %.2f s; relaying the change", REFILL_WAIT)
        except Exception:  # the change must reach the clients whatever the refill did
            log.exception("resolving again what a change dropped failed")
        finally:
            self._refilling = None
            self._relay_waiting()

    def _relay_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        refilled, self._refilled = self._refilled, set()
        for number, announcement in enumerate(waiting, start=1):
            # The resolutions are those of the latest revision: they go with the last change relayed.
            self._publish(announcement, refilled if number == len(waiting) else ())

    def _publish(self, announcement: Announcement, refilled: Iterable[str] = ()) -> None:
        revision = announcement.revision
        if announcement.change.kind is ChangeKind.SPEND:
            event = change_event(announcement)
            for client in self._clients:
                self._offer(client, event)
            return
        if announcement.change.kind is ChangeKind.EVERYTHING or revision is None:
            # The feed itself lost track (a listener that reconnected): so does every client.
            self._resync(self._latest)
            return
        if revision <= self._latest and any(a.revision == revision for a in self._recent):
            return  # delivered twice (this process's own commit, then its NOTIFY)
        self._recent.append(announcement)
        self._latest = max(self._latest, revision)
        event = change_event(announcement)
        resolved = self._resolutions(refilled)
        if not resolved:
            for client in self._clients:
                self._offer(client, event)
            return
        # One event per set of types covered: clients with the same coverage share its bytes.
        events: dict[frozenset[str], bytes] = {frozenset(): event}
        for client in list(self._clients):
            covered = self._covered(client, resolved)
            if covered is None:
                self._offer(client, None)  # its token was revoked: the stream ends
                continue
            if covered not in events:
                events[covered] = change_event(announcement, {name: resolved[name] for name in covered})
            self._offer(client, events[covered])

    def _resolutions(self, names: Iterable[str]) -> dict[str, bytes]:
        resolved = self._resolved
        if resolved is None:
            return {}
        return {name: body for name in names if (body := resolved(name)) is not None}

    def _covered(self, client: _Client, resolved: dict[str, bytes]) -> frozenset[str] | None:
        """The types of ``resolved`` that ``client`` may receive; None if its token has been revoked."""
        if client.token is None:
            return frozenset()
        known, caller = self._services.tokens.authenticate_cached(client.token, use=False)
        if not known:
            return frozenset()  # not checked since the last token change: it asks /resolve, which checks
        if caller is None:
            return None
        return frozenset(name for name in resolved if caller.may_use(name))

    def _resync(self, revision: int) -> None:
        self._latest = max(self._latest, revision)
        self._recent.clear()
        self._floor = self._latest
        event = resync_event(self._latest)
        for client in self._clients:
            self._offer(client, event)

    @staticmethod
    def _offer(client: _Client, event: bytes | None) -> None:
        try:
            client.queue.put_nowait(event)
        except asyncio.QueueFull:
            client.overflowed = True

    async def _poll(self) -> None:
        """Find changes the feed did not push; announce them as resync once they stay unannounced.

        Only while some client is connected: an idle server reads nothing, and a client that connects later
        with an older ``Last-Event-ID`` than the database gets a resync from its catch-up or the next polls.
        """
        suspect: int | None = None
        while True:
            await asyncio.sleep(self._poll_interval)
            if self._services.changes.pushed or not self._clients:
                suspect = None
                continue
            try:
                revision = await asyncio.to_thread(self._services.resolver.revision)
            except ConfigUnavailableError:
                continue
            if revision <= self._latest:
                suspect = None
            elif suspect is not None and revision >= suspect:
                # Still unannounced one poll later: not this process's commit on its way, a change made elsewhere.
                self._resync(revision)
                suspect = None
            else:
                suspect = revision
