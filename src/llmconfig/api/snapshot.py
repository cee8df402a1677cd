"""Kept answers over HTTP: a kept answer costs a dictionary lookup and two ASGI messages.

The read snapshot itself (what is kept, and when it is dropped) is :mod:`llmconfig.snapshot`; resolve payloads
are kept by the service's payload cache (``LLMConfigService.resolved_json``). Here:

* :func:`answer` is what the read routes return: the kept bytes as a response, or the answer read now in a
  worker thread. Like the resolve route, it notes in the request's scope where the answer is kept
  (:class:`Kept`).
* :class:`SnapshotReads` is a plain ASGI middleware that answers a ``GET`` of a path (with its query string) it
  has seen answered that way before, without FastAPI's routing and dependency solving (which cost several times
  more than the answer itself): the route, where its answer is kept and the access it declares are learned from
  the first request FastAPI routed there, and every check is the route's own: the same token snapshot, the same
  policy (``authz``, and the token's interaction types where the answer is of one), the same bytes. Whenever any
  of that cannot be settled without I/O (a token snapshot due for a reload, an answer not kept, a revision
  check due), or the caller is refused, the request goes to FastAPI like any other, so refusals and errors have
  one implementation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmconfig.api import authz
from llmconfig.api.authz import Access
from llmconfig.api.deps import access_of, scope_bearer_token
from llmconfig.errors import LLMConfigError
from llmconfig.snapshot import Key, ReadSnapshot, View
from llmconfig.tokens import TokenService

log = logging.getLogger("llmconfig.api")

# Where a route notes where its answer is kept (a :class:`Kept`), for :class:`SnapshotReads` to learn the path.
SCOPE_KEY = "llmconfig.snapshot_key"
# A bound on the paths learned: one per view and configured object, and per resolved type and user.
MAX_PATHS = 10_000


@dataclass(frozen=True, slots=True)
class Kept:
    """Where the answer to a path is kept, as the route that answered it says."""

    # The kept bytes when they are current, without any I/O; None otherwise.
    lookup: Callable[[], bytes | None]
    # The interaction type the answer is of: a client token must cover it.
    interaction_type: str | None = None


_CONTENT_TYPE = (b"content-type", b"application/json")


class JSONBytes(Response):
    """A JSON document serialised already: FastAPI validates and serialises nothing more."""

    media_type = "application/json"


async def answer(request: Request, view: View, subject: str = "") -> Response:
    """The response for one view of the app's snapshot: the kept bytes, or read now in a worker thread."""
    snapshot: ReadSnapshot = request.app.state.snapshot
    key: Key = (view, subject)
    body = snapshot.cached(key)
    if body is None:
        body = await run_in_threadpool(snapshot.answer, key)
    request.scope[SCOPE_KEY] = Kept(partial(snapshot.cached, key))
    return JSONBytes(body)


class SnapshotReads:
    """Answers ``GET`` requests for kept snapshot answers before FastAPI routes them; see the module docstring."""

    def __init__(self, app: ASGIApp, *, tokens: TokenService) -> None:
        self.app = app
        self._tokens = tokens
        # path and query string → (where the answer is kept, the route FastAPI chose, the access it declares).
        # Only the event loop's thread reads and writes it.
        self._paths: dict[tuple[str, bytes], tuple[Kept, Any, Access]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path = (scope["path"], scope["query_string"])
        learned = self._paths.get(path)
        if learned is None:
            await self._learn(path, scope, receive, send)
            return
        kept, route, access = learned
        body = kept.lookup()
        token = scope_bearer_token(scope) if body is not None else None
        if body is None or not token:
            await self.app(scope, receive, send)
            return
        known, caller = self._tokens.authenticate_cached(token)
        if (
            not known
            or caller is None
            or not authz.allows(caller, access)
            or (kept.interaction_type is not None and not caller.may_use(kept.interaction_type))
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # what FastAPI would have set: the metrics count by its template
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _learn(self, path: tuple[str, bytes], scope: Scope, receive: Receive, send: Send) -> None:
        status = 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, noting_status)
        kept = scope.get(SCOPE_KEY)
        route = scope.get("route")
        # Only answers that exist are learned, so unknown ids cannot fill the map.
        if status != 200 or not isinstance(kept, Kept) or route is None:
            return
        access = access_of(route)
        if access is None:
            return
        if len(self._paths) >= MAX_PATHS:
            self._paths.clear()
        self._paths[path] = (kept, route, access)


# Below this TTL a refresher would only spin: every request checks anyway.
MIN_REFRESH_TTL = 0.1


async def refresh_ahead(snapshot: ReadSnapshot, tokens: TokenService, ttl: float) -> None:
    """Until cancelled: keep the read and token snapshots checked before requests would find a check due.

    Every third of the TTL, each is checked if its check would fall due within half a TTL, in a worker
    thread. The bound on staleness is unchanged (a check at least every TTL); what changes is who waits.
    """
    if ttl < MIN_REFRESH_TTL:
        return
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            await run_in_threadpool(snapshot.refresh_ahead, ttl / 2)
            await run_in_threadpool(tokens.refresh_ahead, ttl / 2)
        except LLMConfigError:
            pass  # an outage: the requests' own checks report it
        except Exception:  # a refresher that died would leave the checks to the requests for good
            log.exception("the background check of the read and token snapshots failed")
