"""Dependencies shared by the routers: the service, and who is calling with which role."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.factory import LLMConfigService
from llmconfig.tokens import Caller, TokenService

# Where the REST resources live; /health and /metrics stay at the root for probes and scrapers.
API_PREFIX = "/api/v1/llm"


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
    """The caller a bearer token stands for; 401 otherwise, 429 once a client has failed too often.

    The token is checked first: a valid one always passes, and only wrong ones are counted.
    """
    if not token:
        raise HTTPException(
            401, "Send an API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    caller = tokens.authenticate(token)
    if caller is not None:
        return caller
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    proxies: TrustedProxies = request.app.state.trusted_proxies
    client = proxies.client_of(request.client.host if request.client else None, request.headers)
    retry_after = limiter.failed(client)
    if retry_after is not None:
        raise HTTPException(
            429,
            f"Too many failed authentication attempts; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    raise HTTPException(401, "Unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})


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
