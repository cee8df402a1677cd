"""Dependencies shared by the routers: the service, and who is calling with which role.

Routers declare the access an operation needs with one of ``ReaderDep``, ``AdminDep`` or ``ClientDep``;
``llmconfig.api.authz`` says which roles each admits.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Query, Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from llmconfig.api import authz
from llmconfig.api.authz import Access
from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.llm import LLMConfigService
from llmconfig.tokens import Caller, TokenService

# Where the REST resources live; /health and /metrics stay at the root for probes and scrapers.
API_PREFIX = "/api/v1/llm"


# Dependencies that do not block are coroutines: a plain function would cost a trip through the thread pool
# on every request.
async def get_service(request: Request) -> LLMConfigService:
    service: LLMConfigService = request.app.state.service
    return service


async def get_tokens(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


ServiceDep = Annotated[LLMConfigService, Depends(get_service)]
TokensDep = Annotated[TokenService, Depends(get_tokens)]

_TOKEN_HELP = "An API token: `llmconfig tokens create --role admin|viewer|client` or `POST /api/v1/llm/tokens`"


async def authenticate(request: Request) -> Caller:
    """The caller the request's bearer token stands for; 401 otherwise, 429 once a client has failed too often.

    A dictionary lookup in the token snapshot; only when that is due to be read again (or a token's last use
    to be written) does the check go to the database, in a worker thread.
    """
    token = bearer_token(request)
    if not token:
        raise _no_token()
    tokens: TokenService = request.app.state.tokens
    known, caller = tokens.authenticate_cached(token)
    if not known:
        caller = await run_in_threadpool(tokens.authenticate, token)
    if caller is None:
        raise _failed(request)
    return caller


def identify(request: Request, tokens: TokenService, token: str | None) -> Caller:
    """The caller a bearer token stands for; 401 otherwise, 429 once a client has failed too often.

    The token is checked first: a valid one always passes, and only wrong ones are counted. It may read the
    database (see :func:`authenticate` for the non-blocking check).
    """
    if not token:
        raise _no_token()
    caller = tokens.authenticate(token)
    if caller is None:
        raise _failed(request)
    return caller


def _no_token() -> HTTPException:
    return HTTPException(
        401, "Send an API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
    )


def _failed(request: Request) -> HTTPException:
    """The refusal of a wrong token, counted against its client: 401, or 429 past the limit."""
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    proxies: TrustedProxies = request.app.state.trusted_proxies
    client = proxies.client_of(request.client.host if request.client else None, request.headers)
    retry_after = limiter.failed(client)
    if retry_after is not None:
        return HTTPException(
            429,
            f"Too many failed authentication attempts; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    return HTTPException(401, "Unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header; None without one."""
    return _bearer(request.headers.get("authorization", ""))


def scope_bearer_token(scope: Scope) -> str | None:
    """:func:`bearer_token` of a request as a pure-ASGI app sees it, before FastAPI does."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return _bearer(value.decode("latin-1"))
    return None


def _bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class TokenCheck(SecurityBase):
    """The check of one access level: the bearer token's caller, admitted by the policy (``authz``) or 403.

    One dependency instead of a chain (bearer scheme, token service, caller, role check): FastAPI solves every
    dependency of a route on every request. It is declared in /openapi.json as the ``HTTPBearer`` scheme, with
    the roles it admits as the requirement's role list.
    """

    def __init__(self, access: Access) -> None:
        self.model = HTTPBearerModel(description=_TOKEN_HELP)
        self.scheme_name = "HTTPBearer"
        self.access = access

    async def __call__(self, request: Request) -> Caller:
        return authz.require(await authenticate(request), self.access)


def _declared(access: Access) -> Any:
    # Security rather than Depends: the roles go into the operation's security requirement in /openapi.json.
    return Security(TokenCheck(access), scopes=list(authz.POLICY[access]))


ReaderDep = Annotated[Caller, _declared(Access.READ)]
AdminDep = Annotated[Caller, _declared(Access.ADMIN)]
ClientDep = Annotated[Caller, _declared(Access.CLIENT)]


def access_of(route: Any) -> Access | None:
    """The access a route declares through one of the aliases above, or None (an open route)."""
    if not isinstance(route, APIRoute):
        return None
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, TokenCheck):
            return dependant.call.access
        pending.extend(dependant.dependencies)
    return None


async def catalog_refresh(
    caller: ReaderDep,
    refresh: Annotated[
        bool, Query(description="Discover the models again first; it calls the provider, so it needs admin")
    ] = False,
) -> bool:
    """Whether to refresh the catalog; refreshing calls the provider and rewrites the catalog, so admin only."""
    if refresh:
        authz.require(caller, Access.ADMIN, action="Refreshing the catalog calls the provider")
    return refresh


CatalogRefreshDep = Annotated[bool, Depends(catalog_refresh)]


async def client_for_type(interaction_type: str, caller: ClientDep) -> Caller:
    """A client (or admin) whose token covers the ``interaction_type`` of the path; 403 otherwise."""
    return authz.require_type(caller, interaction_type)


ClientForTypeDep = Annotated[Caller, Depends(client_for_type)]


_IF_MATCH = re.compile(r'\s*(?:W/)?"?(\d{1,9})"?\s*')


async def expected_version(
    if_match: Annotated[str | None, Header(description="Expected version, as 'If-Match: 3'")] = None,
) -> int | None:
    """The version an ``If-Match`` header asks for (``3``, ``"3"`` or ``W/"3"``), or None."""
    if if_match is None:
        return None
    match = _IF_MATCH.fullmatch(if_match)
    if match is None:
        raise HTTPException(422, f"If-Match must be a version number, got {if_match[:20]!r}")
    return int(match.group(1))


IfMatchDep = Annotated[int | None, Depends(expected_version)]
