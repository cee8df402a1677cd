"""/tokens: create, list and revoke the API's bearer tokens (admin only; a token is shown once)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from llmconfig.api.deps import API_PREFIX, AdminDep, TokensDep
from llmconfig.api.errors import COMMON_RESPONSES, NOT_FOUND
from llmconfig.tokens import TokenCreate, TokenCreated, TokenInfo

router = APIRouter(prefix=f"{API_PREFIX}/tokens", tags=["tokens"], responses=COMMON_RESPONSES)


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(data: TokenCreate, tokens: TokensDep, caller: AdminDep) -> TokenCreated:
    """A new token of the given role; the token is in this answer only (it is stored as a hash)."""
    token, info = tokens.create(
        role=data.role, name=data.name, interaction_types=data.interaction_types, actor=caller.name
    )
    return TokenCreated(token=token, info=info)


@router.get("", response_model=list[TokenInfo])
def list_tokens(tokens: TokensDep, _caller: AdminDep) -> list[TokenInfo]:
    """Every token, oldest first, with its role, limits, prefix and when it was last used or revoked."""
    return tokens.list()


@router.delete("/{token_id}", status_code=204, responses=NOT_FOUND)
def revoke_token(token_id: str, tokens: TokensDep, caller: AdminDep) -> Response:
    """Revoke a token: requests with it get 401 from now on. Revoking twice is harmless."""
    tokens.revoke(token_id, actor=caller.name, by_id_only=True)
    return Response(status_code=204)
