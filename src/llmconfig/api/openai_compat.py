"""The OpenAI-compatible face at ``/v1``: ``GET /models``, ``POST /chat/completions``, ``POST /embeddings``.

Thin: it reads the token and the body and hands them to :class:`~llmconfig.gateway.Gateway`. Errors leave in
OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``), not as problem+json, so that the
official SDKs raise their usual exceptions. The access policy is the API's own (``llmconfig.api.authz``):
client and admin tokens, a client token only for its interaction types.

A small pure-ASGI app (:class:`OpenAICompatible`) rather than FastAPI routes: this is the path every agent
request takes, and FastAPI's route matching over the whole API, its dependency machinery and its request
objects cost more than the gateway's own work (measured with ``python -m bench.gateway``). It sits inside the
app's middleware (security headers, the request metrics; the NUL and body-size guard lets ``/v1`` by, since
this face caps its own bodies) and in front of the router; every other path goes on to the FastAPI app
unchanged.

Checking a token is a hash and a lookup in the token snapshot, but refreshing that snapshot (and noting a
token's last use) reads or writes the database, which must not happen on the event loop: a token that was
checked a moment ago is answered from :class:`CallerCache`, anything else is checked in a worker thread.
The endpoints are not in ``/openapi.json``: their contract is OpenAI's API.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmconfig.api import authz
from llmconfig.api.authz import Access
from llmconfig.api.deps import identify, scope_bearer_token
from llmconfig.db.changes import Announcement, ChangeKind
from llmconfig.gateway import Gateway, GatewayError, Reply, StreamReply, Upstream
from llmconfig.gateway.errors import AUTHENTICATION, PERMISSION, RATE_LIMIT
from llmconfig.llm import LLMConfigService
from llmconfig.tokens import TOUCH_INTERVAL, Caller

log = logging.getLogger("llmconfig.api")

PREFIX = "/v1/"
_MAX_CACHED_TOKENS = 10_000


class CallerCache:
    """Tokens checked recently, and who they stand for; dropped whenever tokens change.

    An entry is fresh as long as the token snapshot would stay fresh without a change (``ttl`` seconds while
    changes are not pushed), and never longer than half the interval at which a token's last use is noted, so
    that checks through the token service (which note it) keep happening. When an entry goes stale, one
    request checks the token again while the others arriving meanwhile are let through on the entry (a token
    change this process learns of drops every entry at once, so a revoked token is never among them).
    """

    def __init__(self, service: LLMConfigService) -> None:
        self._changes = service.services.changes
        self._ttl = service.settings.cache_ttl
        self._callers: dict[str, tuple[Caller, float]] = {}
        self._checking: set[str] = set()
        self._lock = threading.Lock()
        self._changes.subscribe(self.apply)

    def get(self, token: str) -> Caller | None:
        """The caller of ``token`` if no check is needed now; None means: check it (then :meth:`put`)."""
        entry = self._callers.get(token)
        if entry is None:
            return None
        caller, expires = entry
        if time.monotonic() < expires:
            return caller
        with self._lock:
            if token in self._checking:
                return caller  # another request is checking it right now
            self._checking.add(token)
        return None

    def put(self, token: str, caller: Caller | None) -> None:
        """Note the outcome of a check (None: the token was refused)."""
        lifetime = TOUCH_INTERVAL / 2 if self._changes.pushed else min(self._ttl, TOUCH_INTERVAL / 2)
        with self._lock:
            self._checking.discard(token)
            if caller is None or lifetime <= 0:
                self._callers.pop(token, None)
                return
            if len(self._callers) >= _MAX_CACHED_TOKENS:
                self._callers.clear()
            self._callers[token] = (caller, time.monotonic() + lifetime)

    def apply(self, announcement: Announcement) -> None:
        if announcement.change.kind in (ChangeKind.TOKEN, ChangeKind.EVERYTHING):
            with self._lock:
                self._callers.clear()


_JSON = (b"content-type", b"application/json")
_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx in front must not buffer the stream
]


@dataclass(frozen=True, slots=True)
class _Route:
    """What the request metrics label a request by (they read ``scope["route"].path``)."""

    path: str


class OpenAICompatible:
    """Serves ``/v1/models``, ``/v1/chat/completions`` and ``/v1/embeddings``; passes every other path on."""

    def __init__(self, app: ASGIApp, *, gateway: Gateway, callers: CallerCache, max_body_bytes: int) -> None:
        self.app = app
        self.gateway = gateway
        self.callers = callers
        self.max_body_bytes = max_body_bytes
        self._routes: dict[str, tuple[str, _Route]] = {
            "/v1/models": ("GET", _Route("/v1/models")),
            "/v1/chat/completions": ("POST", _Route("/v1/chat/completions")),
            "/v1/embeddings": ("POST", _Route("/v1/embeddings")),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        method, route = self._routes.get(path, ("", None))
        if route is None:
            scope["route"] = _Route("/v1/{unknown}")
            await _send_error(
                send,
                GatewayError(
                    404,
                    f"Unknown endpoint {path[:100]!r}; this server offers GET /v1/models, "
                    "POST /v1/chat/completions and POST /v1/embeddings",
                    code="unknown_url",
                ),
            )
            return
        scope["route"] = route
        if scope["method"] != method:
            error = GatewayError(405, f"{path} takes {method} requests", code="method_not_allowed")
            error.headers["Allow"] = method
            await _send_error(send, error)
            return
        started = False
        try:
            caller = await self._caller(scope)
            if path == "/v1/models":
                reply: Reply | StreamReply = await self.gateway.models(caller)
            else:
                body = await _read_body(receive, self.max_body_bytes)
                if path == "/v1/chat/completions":
                    reply = await self.gateway.chat(caller, body)
                else:
                    reply = await self.gateway.embeddings(caller, body)
            if isinstance(reply, StreamReply):
                started = True
                await _stream(reply.chunks, receive, send)
                return
            started = True
            await send({"type": "http.response.start", "status": reply.status, "headers": _json_headers(reply.body)})
            await send({"type": "http.response.body", "body": reply.body})
        except GatewayError as exc:
            if not started:
                await _send_error(send, exc)
        except Exception as exc:
            # Only the type: the frames hold provider keys.
            log.error("unexpected %s while handling %s %s", type(exc).__name__, scope["method"], path)
            if not started:
                await _send_error(
                    send, GatewayError(500, "Internal error; the server log has the error type", type="server_error")
                )

    async def _caller(self, scope: Scope) -> Caller:
        """The caller of a ``/v1`` request, if the policy lets it call the OpenAI-compatible endpoints."""
        token = scope_bearer_token(scope)
        if not token:
            raise GatewayError(
                401,
                "Send a client or admin token as 'Authorization: Bearer <token>' (the OpenAI SDKs' api_key)",
                type=AUTHENTICATION,
                code="missing_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        caller = self.callers.get(token)
        if caller is None:
            request = Request(scope)
            try:
                caller = await asyncio.to_thread(identify, request, request.app.state.tokens, token)
            except StarletteHTTPException as refused:
                self.callers.put(token, None)
                headers = dict(refused.headers or {})
                if refused.status_code == 429:
                    raise GatewayError(
                        429, str(refused.detail), type=RATE_LIMIT, code="too_many_failed_attempts", headers=headers
                    ) from None
                raise GatewayError(
                    401, str(refused.detail), type=AUTHENTICATION, code="invalid_api_key", headers=headers
                ) from None
            except BaseException:
                self.callers.put(token, None)
                raise
            self.callers.put(token, caller)
        reason = authz.refusal(caller, Access.CLIENT, action="The OpenAI-compatible endpoints")
        if reason is not None:
            raise GatewayError(403, reason, type=PERMISSION, code="insufficient_role")
        return caller


def _json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    # With its length, the server sends the answer as one piece rather than chunked (one write fewer).
    return [_JSON, (b"content-length", str(len(body)).encode())]


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or a 413 once it is larger than ``limit`` bytes.

    The rest of a body that is too large is still read (and dropped, so memory stays bounded), so that the
    client, which sends its whole request before it reads the answer, gets the 413 rather than a reset.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise GatewayError(400, "The client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise GatewayError(
            413,
            f"The request body is {size} bytes, more than the {limit} this server takes "
            "(LLMCONFIG_GATEWAY_MAX_BODY_BYTES); send a shorter conversation, or images as URLs instead of data",
            code="request_too_large",
        )
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_error(send: Send, exc: GatewayError) -> None:
    body = exc.body()
    headers = [*_json_headers(body), *((k.lower().encode(), v.encode()) for k, v in exc.headers.items())]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(chunks: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
    """Send the chunks as they come; a client that goes away stops the stream (and the provider's answer)."""
    streaming = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                if streaming is not None:
                    streaming.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
        async for data in chunks:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone:
            raise
        if streaming is not None:
            streaming.uncancel()
    finally:
        watcher.cancel()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def install(app: FastAPI, service: LLMConfigService) -> None:
    """Serve ``/v1`` on ``app``; :func:`startup` and :func:`shutdown` belong in its lifespan.

    Call it before the app's other middleware is added: it then sits inside them (metrics, guards, headers).
    """
    clients = service.providers.model_clients
    upstream = Upstream(clients.policy, max_response_bytes=clients.max_response_bytes)
    gateway = Gateway(service, upstream)
    app.state.gateway = gateway
    app.add_middleware(
        OpenAICompatible,
        gateway=gateway,
        callers=CallerCache(service),
        max_body_bytes=service.settings.gateway_max_body_bytes,
    )


async def startup(app: FastAPI) -> None:
    """Open the gateway's aiohttp session in the server's event loop, and set what startup built aside."""
    gateway: Gateway = app.state.gateway
    await gateway.upstream.start()
    _freeze_startup_objects()


_frozen = threading.Event()


def _freeze_startup_objects() -> None:
    # Everything imported and built by now (the SDKs, LangChain, SQLAlchemy, the app) lives as long as the
    # process; the cyclic garbage collector would otherwise walk it again and again while requests allocate,
    # which cost the gateway a large share of its throughput at 32 connections (python -m bench.gateway).
    # Once per process, after a collection, so that no garbage of the moment is kept for good.
    if not _frozen.is_set():
        _frozen.set()
        gc.collect()
        gc.freeze()


async def shutdown(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    await gateway.upstream.close()
