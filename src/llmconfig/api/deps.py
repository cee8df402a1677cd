"""Dependencies shared by the routers: the service, and who is calling with which role.

Routers declare the access an operation needs with one of ``ReaderDep``, ``AdminDep`` or ``ClientDep``;
``llmconfig.api.authz`` says which roles each admits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Query, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmconfig.api import authz
from llmconfig.api.authz import Access
from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.llm import LLMConfigService
from llmconfig.tokens import Caller, TokenService

# Where the REST resources live; /health and /metrics stay at the root for probes and scrapers.
API_PREFIX = "/api/v1/llm"


# Dependencies that do not block are coroutines: a plain function would cost a trip through the thread pool
# on every request. ``authenticate`` stays a function: refreshing the token snapshot reads the database.
async def get_service(request: Request) -> LLMConfigService:
    service: LLMConfigService = request.app.state.service
    return service


async def get_tokens(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


ServiceDep = Annotated[LLMConfigService, Depends(get_service)]
TokensDep = Annotated[TokenService, Depends(get_tokens)]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token: `llmconfig tokens create --role admin|viewer|client` or `POST /api/v1/llm/tokens`",
)


def authenticate(
    request: Request,
    tokens: TokensDep,
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


# The access each authorization dependency stands for, so that a refusal can be given before the
# dependencies run (see errors._refusal: FastAPI parses the body first).
ACCESS_OF: dict[Callable[..., Any], Access] = {}


def _needs(access: Access) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    async def authorize(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        return authz.require(caller, access)

    authorize.__name__ = f"needs_{access.value}"
    ACCESS_OF[authorize] = access
    return authorize


def _declared(access: Access) -> Any:
    # Security rather than Depends: the roles go into the operation's security requirement in /openapi.json.
    return Security(_needs(access), scopes=list(authz.POLICY[access]))


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
        if dependant.call in ACCESS_OF:
            return ACCESS_OF[dependant.call]
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


async def expected_version(
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
