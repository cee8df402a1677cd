"""Bearer tokens of the REST API, with the roles ``admin`` (everything) and ``viewer`` (reads only).

Tokens are random (256 bits) and shown once; only their SHA-256 is stored, which is enough for a secret
with that much entropy and keeps verification a single indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import ApiToken, utcnow
from llmconfig.errors import NotFoundError

Role = Literal["admin", "viewer"]
TOKEN_PREFIX = "llmc_"


class TokenInfo(BaseModel):
    id: str
    name: str
    role: Role
    token_prefix: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class Caller(BaseModel):
    """Who is making a request: the name recorded in the audit trail, and what they may do."""

    name: str
    role: Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(self, *, sessions: sessionmaker[Session], env_admin_token: str | None = None) -> None:
        self._sessions = sessions
        self._env_admin_hash = hash_token(env_admin_token) if env_admin_token else None
        self._touched: dict[str, float] = {}

    def create(self, *, role: Role, name: str, actor: str = "system") -> tuple[str, TokenInfo]:
        """A new token; the plaintext is returned here and never again."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self._sessions, write=True) as session:
            row = ApiToken(
                name=name, role=role, token_hash=hash_token(token), token_prefix=token[:12], created_by=actor
            )
            session.add(row)
            session.flush()
            info = TokenInfo.model_validate(row, from_attributes=True)
            record_change(session, Change.token(row.id), actor=actor, action="token.create", after=info)
        return token, info

    def list(self) -> list[TokenInfo]:
        with transaction(self._sessions) as session:
            rows = session.scalars(select(ApiToken).order_by(ApiToken.created_at))
            return [TokenInfo.model_validate(row, from_attributes=True) for row in rows]

    def revoke(self, ref: str, *, actor: str = "system") -> TokenInfo:
        """Revoke a token by id, name or prefix; revoking twice is harmless."""
        with transaction(self._sessions, write=True) as session:
            row = session.scalar(
                select(ApiToken).where(or_(ApiToken.id == ref, ApiToken.name == ref, ApiToken.token_prefix == ref))
            )
            if row is None:
                raise NotFoundError(f"No token {ref!r}; list them with `llmconfig tokens list`")
            before = TokenInfo.model_validate(row, from_attributes=True)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.flush()
            after = TokenInfo.model_validate(row, from_attributes=True)
            record_change(session, Change.token(row.id), actor=actor, action="token.revoke", before=before, after=after)
            return after

    def has_admin(self) -> bool:
        if self._env_admin_hash is not None:
            return True
        with transaction(self._sessions) as session:
            found = session.scalar(
                select(ApiToken.id).where(ApiToken.role == "admin", ApiToken.revoked_at.is_(None)).limit(1)
            )
            return found is not None

    def authenticate(self, token: str) -> Caller | None:
        """The caller a token stands for, or None for an unknown or revoked token."""
        digest = hash_token(token)
        if self._env_admin_hash is not None and hmac.compare_digest(digest, self._env_admin_hash):
            return Caller(name="admin (LLMCONFIG_ADMIN_TOKEN)", role="admin")
        with transaction(self._sessions) as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))
            if row is None:
                return None
            caller = Caller(name=f"token:{row.name}", role=row.role)
            token_id = row.id
        self._touch(token_id)
        return caller

    def _touch(self, token_id: str) -> None:
        # Recorded at most once a minute per token and process, so that reads do not turn into writes.
        now = time.monotonic()
        if now - self._touched.get(token_id, float("-inf")) < 60:
            return
        self._touched[token_id] = now
        with transaction(self._sessions, write=True) as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
