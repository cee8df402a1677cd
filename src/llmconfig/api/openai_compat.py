"""The OpenAI-compatible face at ``/v1``: ``GET /models``, ``POST /chat/completions``, ``POST /embeddings``.

Thin: a route reads the token and the body and hands them to :class:`~llmconfig.gateway.Gateway`. Errors
leave in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``), not as problem+json, so that
the official SDKs raise their usual exceptions; the routes therefore catch every refusal themselves instead of
leaving it to the app's handlers. The access policy is the API's own (``llmconfig.api.authz``): client and
admin tokens, a client token only for its interaction types.

Checking a token is a hash and a lookup in the token snapshot, but refreshing that snapshot (and noting a
token's last use) reads or writes the database, which must not happen on the event loop: a token that was
checked a moment ago is answered from :class:`CallerCache`, anything else is checked in a worker thread.
The routes are left out of ``/openapi.json``: their contract is OpenAI's API.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmconfig.api import authz
from llmconfig.api.authz import Access
from llmconfig.api.deps import bearer_token, identify
from llmconfig.db.changes import Announcement, ChangeKind
from llmconfig.gateway import Gateway, GatewayError, StreamReply, Upstream
from llmconfig.gateway.errors import AUTHENTICATION, PERMISSION, RATE_LIMIT, error_body
from llmconfig.llm import LLMConfigService
from llmconfig.tokens import TOUCH_INTERVAL, Caller

log = logging.getLogger("llmconfig.api")

router = APIRouter(prefix="/v1", tags=["openai-compatible"], include_in_schema=False)

_JSON = "application/json"
_MAX_CACHED_TOKENS = 10_000


class CallerCache:
    """Tokens checked recently, and who they stand for; dropped whenever tokens change.

    An entry lives as long as the token snapshot would stay fresh without a change (``ttl`` seconds while
    changes are not pushed), and never longer than half the interval at which a token's last use is noted,
    so that checks through the token service (which note it) keep happening.
    """

    def __init__(self, service: LLMConfigService) -> None:
        self._changes = service.services.changes
        self._ttl = service.settings.cache_ttl
        self._callers: dict[str, tuple[Caller, float]] = {}
        self._lock = threading.Lock()
        self._changes.subscribe(self.apply)

    def get(self, token: str) -> Caller | None:
        entry = self._callers.get(token)
        if entry is None:
            return None
        caller, expires = entry
        return caller if time.monotonic() < expires else None

    def put(self, token: str, caller: Caller) -> None:
        lifetime = TOUCH_INTERVAL / 2 if self._changes.pushed else min(self._ttl, TOUCH_INTERVAL / 2)
        if lifetime <= 0:
            return
        with self._lock:
            if len(self._callers) >= _MAX_CACHED_TOKENS:
                self._callers.clear()
            self._callers[token] = (caller, time.monotonic() + lifetime)

    def apply(self, announcement: Announcement) -> None:
        if announcement.change.kind in (ChangeKind.TOKEN, ChangeKind.EVERYTHING):
            with self._lock:
                self._callers.clear()


def _error(exc: GatewayError) -> Response:
    return Response(exc.body(), status_code=exc.status, media_type=_JSON, headers=exc.headers)


async def _caller(request: Request) -> Caller:
    """The caller of a ``/v1`` request, if the policy lets it call the OpenAI-compatible endpoints."""
    token = bearer_token(request)
    if not token:
        raise GatewayError(
            401,
            "Send a client or admin token as 'Authorization: Bearer <token>' (the OpenAI SDKs' api_key)",
            type=AUTHENTICATION,
            code="missing_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    cache: CallerCache = request.app.state.gateway_callers
    caller = cache.get(token)
    if caller is None:
        try:
            caller = await asyncio.to_thread(identify, request, request.app.state.tokens, token)
        except StarletteHTTPException as refused:
            headers = dict(refused.headers or {})
            if refused.status_code == 429:
                raise GatewayError(
                    429, str(refused.detail), type=RATE_LIMIT, code="too_many_failed_attempts", headers=headers
                ) from None
            raise GatewayError(
                401, str(refused.detail), type=AUTHENTICATION, code="invalid_api_key", headers=headers
            ) from None
        cache.put(token, caller)
    reason = authz.refusal(caller, Access.CLIENT, action="The OpenAI-compatible endpoints")
    if reason is not None:
        raise GatewayError(403, reason, type=PERMISSION, code="insufficient_role")
    return caller


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _unexpected(exc: Exception, request: Request) -> Response:
    # Only the type: the frames hold provider keys.
    log.error("unexpected %s while handling %s %s", type(exc).__name__, request.method, request.url.path)
    body = error_body("Internal error; the server log has the error type", type="server_error")
    return Response(body, status_code=500, media_type=_JSON)


@router.get("/models")
async def list_models(request: Request) -> Response:
    """The interaction types this token may use, as OpenAI's model list."""
    try:
        reply = await _gateway(request).models(await _caller(request))
    except GatewayError as exc:
        return _error(exc)
    except Exception as exc:
        return _unexpected(exc, request)
    return Response(reply.body, status_code=reply.status, media_type=_JSON)


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    """A chat completion (or its stream) from the provider configured for the interaction type in ``model``."""
    try:
        caller = await _caller(request)
        reply = await _gateway(request).chat(caller, await request.body())
    except GatewayError as exc:
        return _error(exc)
    except Exception as exc:
        return _unexpected(exc, request)
    if isinstance(reply, StreamReply):
        return StreamingResponse(
            reply.chunks,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return Response(reply.body, status_code=reply.status, media_type=_JSON)


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    """Embeddings from the provider configured for the interaction type in ``model``."""
    try:
        caller = await _caller(request)
        reply = await _gateway(request).embeddings(caller, await request.body())
    except GatewayError as exc:
        return _error(exc)
    except Exception as exc:
        return _unexpected(exc, request)
    return Response(reply.body, status_code=reply.status, media_type=_JSON)


def install(app: FastAPI, service: LLMConfigService) -> None:
    """Serve ``/v1`` on ``app``; :func:`startup` and :func:`shutdown` belong in its lifespan."""
    clients = service.providers.model_clients
    upstream = Upstream(clients.policy, max_response_bytes=clients.max_response_bytes)
    app.state.gateway = Gateway(service, upstream)
    app.state.gateway_callers = CallerCache(service)
    app.include_router(router)


async def startup(app: FastAPI) -> None:
    """Open the gateway's aiohttp session in the server's event loop."""
    gateway: Gateway = app.state.gateway
    await gateway.upstream.start()


async def shutdown(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    await gateway.upstream.close()
