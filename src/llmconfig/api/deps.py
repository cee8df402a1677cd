"""Dependencies shared by the routers: the service, and who is calling with which role."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmconfig.llm import LLMConfigService
from llmconfig.tokens import Caller, TokenService

# Where the REST resources live; /health and /metrics stay at the root for probes and scrapers.
API_PREFIX = "/api/v1/llm"


class FailedAuthLimiter:
    """Slows down guessing: after ``limit`` failed attempts within ``window`` seconds, a client gets 429."""

    def __init__(self, *, limit: int = 10, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        with self._lock:
            failures = self._recent(client)
            if len(failures) < self.limit:
                return None
            return max(1, int(failures[0] + self.window - time.monotonic()) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures


def get_service(request: Request) -> LLMConfigService:
    service: LLMConfigService = request.app.state.service
    return service


def get_tokens(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


ServiceDep = Annotated[LLMConfigService, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="An API token: `llmconfig tokens create --role viewer|admin`")


def authenticate(
    request: Request,
    tokens: Annotated[TokenService, Depends(get_tokens)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return identify(request, tokens, credentials.credentials if credentials else None)


def identify(request: Request, tokens: TokenService, token: str | None) -> Caller:
    """The caller a bearer token stands for; 401 (or 429 after repeated failures) otherwise."""
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    retry_after = limiter.retry_after(client)
    if retry_after is not None:
        raise HTTPException(
            429,
            f"Too many failed authentication attempts; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    if not token:
        limiter.failed(client)
        raise HTTPException(
            401, "Send an API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    caller = tokens.authenticate(token)
    if caller is None:
        limiter.failed(client)
        raise HTTPException(401, "Unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return caller


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    if caller.role != "admin":
        raise HTTPException(403, "This needs an admin token; viewer tokens may only read")
    return caller


ViewerDep = Annotated[Caller, Depends(authenticate)]
AdminDep = Annotated[Caller, Depends(require_admin)]


def expected_version(
    if_match: Annotated[str | None, Header(description="Expected version, as 'If-Match: 3'")] = None,
) -> int | None:
    """The version an ``If-Match`` header asks for (``3``, ``"3"`` or ``W/"3"``), or None."""
    if if_match is None:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?(\d{1,9})"?\s*', if_match)
    if match is None:
        raise HTTPException(422, f"If-Match must be a version number, got {if_match[:20]!r}")
    return int(match.group(1))


IfMatchDep = Annotated[int | None, Depends(expected_version)]
