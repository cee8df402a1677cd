"""Bearer tokens of the REST API and their roles.

Roles (what each may do over HTTP is stated once, in ``llmconfig.api.authz``):

* ``admin``: everything;
* ``viewer``: reads the configuration, providers, audit and usage (never a key);
* ``client``: what agent processes need (resolve, the OpenAI-compatible endpoints, usage events, the change
  stream), optionally limited to some interaction types.

Tokens are random (256 bits) and shown once; only their SHA-256 is stored, which is enough for a secret
with that much entropy. Checking a token is a hash and a dictionary lookup in an in-memory snapshot of the
active tokens. The snapshot is dropped by every token change this process learns of (its own, and on
PostgreSQL every replica's, through the change feed); while changes are not pushed (SQLite, or the listener
is down) it is also re-read at most ``ttl`` seconds after it was taken, so a token created or revoked by
another process (the CLI) is known here within that time.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.changes import Announcement, Change, ChangeKind, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import ApiToken, InteractionType, utcnow
from llmconfig.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from llmconfig.db.notifications import ChangeFeed

Role = Literal["admin", "viewer", "client"]
ROLES: tuple[Role, ...] = get_args(Role)
TOKEN_PREFIX = "llmc_"
ENV_ADMIN = "admin (LLMCONFIG_ADMIN_TOKEN)"
MAX_NAME_LENGTH = 100
# How often a token's last use is written, per token and process: reads must not turn into writes.
TOUCH_INTERVAL = 60.0


class TokenCreate(BaseModel):
    """A token to make: its label, its role and, for a client token, the interaction types it may use."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, description="A label to recognise the token by")
    role: Role
    interaction_types: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=100,
        description="Client tokens only: the interaction types the token may use (all when left out)",
    )


class TokenInfo(BaseModel):
    """What is known about a token, never the token itself."""

    id: str
    name: str
    role: Role
    interaction_types: list[str] | None = None
    token_prefix: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(BaseModel):
    """A new token and what is known about it; the only time the token itself is shown."""

    token: str
    info: TokenInfo


class Caller(BaseModel):
    """Who is making a request: the name recorded in the audit trail, and what they may do.

    ``interaction_types`` is None unless a client token is limited to those types.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    interaction_types: tuple[str, ...] | None = None
    token_id: str | None = None

    def may_use(self, interaction_type: str) -> bool:
        """Whether this caller's token covers ``interaction_type``."""
        return self.interaction_types is None or interaction_type in self.interaction_types


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    callers: dict[str, Caller]  # by token hash, active tokens only
    taken_at: float


class TokenService:
    """Create, list and revoke tokens, and tell who a token stands for."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        env_admin_token: str | None = None,
        ttl: float = 1.0,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._sessions = sessions
        self._env_admin_hash = hash_token(env_admin_token) if env_admin_token else None
        self._env_admin = Caller(name=ENV_ADMIN, role="admin")
        self._ttl = ttl
        self._changes = changes
        self._snapshot: _Snapshot | None = None
        self._reload = threading.Lock()
        self._touched: dict[str, float] = {}

    # -- changing ----------------------------------------------------------------------------------

    def create(
        self,
        *,
        role: Role,
        name: str,
        interaction_types: builtins.list[str] | None = None,
        actor: str = "system",
    ) -> tuple[str, TokenInfo]:
        """A new token; the plaintext is returned here and never again.

        ``role`` is checked at run time too, since the CLI passes what was typed. ValidationError for an
        unknown role, a blank or overlong name, or a type limit that is not for a
        client token or names an interaction type that does not exist (the message lists the known ones).
        """
        checked_role = _checked_role(role)
        checked_name = _checked_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self._sessions, write=True) as session:
            types = _checked_types(session, checked_role, interaction_types)
            row = ApiToken(
                name=checked_name,
                role=checked_role,
                interaction_types=types,
                token_hash=hash_token(token),
                token_prefix=token[:12],
                created_by=actor,
            )
            session.add(row)
            session.flush()
            info = TokenInfo.model_validate(row, from_attributes=True)
            record_change(session, Change.token(row.id), actor=actor, action="token.create", after=info)
        self._forget_snapshot()
        return token, info

    def revoke(self, ref: str, *, actor: str = "system", by_id_only: bool = False) -> TokenInfo:
        """Revoke a token by id (or, unless ``by_id_only``, by prefix or name); revoking twice is harmless.

        Requests with it are refused by this process at once, and by others within ``ttl`` seconds.
        ConflictError when a name is shared by several tokens (revoke by id then).
        """
        with transaction(self._sessions, write=True) as session:
            row = session.get(ApiToken, ref)
            if row is None and not by_id_only:
                rows = session.scalars(
                    select(ApiToken).where(or_(ApiToken.token_prefix == ref, ApiToken.name == ref))
                ).all()
                if len(rows) > 1:
                    raise ConflictError(f"{len(rows)} tokens are named {ref!r}; revoke one by its id")
                row = rows[0] if rows else None
            if row is None:
                raise NotFoundError(f"No token {ref!r}; list them with `llmconfig tokens list` or GET /tokens")
            if row.revoked_at is None:
                before = TokenInfo.model_validate(row, from_attributes=True)
                row.revoked_at = utcnow()
                session.flush()
                record_change(
                    session,
                    Change.token(row.id),
                    actor=actor,
                    action="token.revoke",
                    before=before,
                    after=TokenInfo.model_validate(row, from_attributes=True),
                )
            info = TokenInfo.model_validate(row, from_attributes=True)
        self._forget_snapshot()
        return info

    # -- reading -----------------------------------------------------------------------------------

    def list(self) -> builtins.list[TokenInfo]:
        with transaction(self._sessions) as session:
            rows = session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))
            return [TokenInfo.model_validate(row, from_attributes=True) for row in rows]

    def has_admin(self) -> bool:
        if self._env_admin_hash is not None:
            return True
        return any(caller.role == "admin" for caller in self._current().callers.values())

    def authenticate(self, token: str) -> Caller | None:
        """The caller a token stands for, or None for an unknown or revoked token."""
        digest = hash_token(token)
        if self._env_admin_hash is not None and hmac.compare_digest(digest, self._env_admin_hash):
            return self._env_admin
        caller = self._current().callers.get(digest)
        if caller is not None and caller.token_id is not None:
            self._touch(caller.token_id)
        return caller

    def authenticate_cached(self, token: str, *, use: bool = True) -> tuple[bool, Caller | None]:
        """:meth:`authenticate` without any I/O, when it can be: ``(True, caller or None)``.

        ``(False, None)`` when answering needs the database (the snapshot is due to be read again, or the
        token's last use to be written): call :meth:`authenticate` then, where blocking is allowed.
        ``use=False`` for a check that is not a use of the token (an open change stream checking it again),
        which never waits on the last use.
        """
        digest = hash_token(token)
        if self._env_admin_hash is not None and hmac.compare_digest(digest, self._env_admin_hash):
            return True, self._env_admin
        snapshot = self._snapshot
        if snapshot is None or not self._fresh(snapshot):
            return False, None
        caller = snapshot.callers.get(digest)
        if use and caller is not None and caller.token_id is not None and self._touch_due(caller.token_id):
            return False, None
        return True, caller

    def apply(self, announcement: Announcement) -> None:
        """Drop the snapshot when tokens may have changed (subscribe this to the change feed)."""
        if announcement.change.kind in (ChangeKind.TOKEN, ChangeKind.EVERYTHING):
            self._forget_snapshot()

    def _fresh(self, snapshot: _Snapshot) -> bool:
        pushed = self._changes is not None and self._changes.pushed
        return pushed or time.monotonic() - snapshot.taken_at < self._ttl

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._fresh(snapshot):
            return snapshot
        with self._reload:
            snapshot = self._snapshot
            if snapshot is None or not self._fresh(snapshot):
                snapshot = self._load()
                self._snapshot = snapshot
            return snapshot

    def refresh_ahead(self, ahead: float) -> None:
        """Read the tokens again now if the snapshot would be due within ``ahead`` seconds (blocking).

        For a background refresher: requests then never find the snapshot due, and none waits for the read.
        Nothing happens while changes are pushed, or before the snapshot was first taken.
        """
        snapshot = self._snapshot
        if snapshot is None or (self._changes is not None and self._changes.pushed):
            return
        if time.monotonic() - snapshot.taken_at < self._ttl - ahead:
            return
        with self._reload:
            if self._snapshot is snapshot:  # not dropped or replaced meanwhile
                self._snapshot = self._load()

    def _forget_snapshot(self) -> None:
        # Under the reload lock: a reload that read the tokens before this change committed finishes first,
        # and its snapshot is dropped here rather than served for another ``ttl`` seconds.
        with self._reload:
            self._snapshot = None

    def _load(self) -> _Snapshot:
        taken_at = time.monotonic()
        with transaction(self._sessions) as session:
            rows = session.execute(
                select(
                    ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.interaction_types, ApiToken.token_hash
                ).where(ApiToken.revoked_at.is_(None))
            ).all()
        callers = {
            row.token_hash: Caller(
                name=f"token:{row.name}",
                role=row.role,
                interaction_types=tuple(row.interaction_types) if row.interaction_types is not None else None,
                token_id=row.id,
            )
            for row in rows
        }
        return _Snapshot(callers=callers, taken_at=taken_at)

    def _touch_due(self, token_id: str) -> bool:
        return time.monotonic() - self._touched.get(token_id, float("-inf")) >= TOUCH_INTERVAL

    def _touch(self, token_id: str) -> None:
        if not self._touch_due(token_id):
            return
        self._touched[token_id] = time.monotonic()
        with transaction(self._sessions, write=True) as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def _checked_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise ValidationError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}")


def _checked_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME_LENGTH or not stripped.isprintable():
        raise ValidationError(f"A token's name is 1 to {MAX_NAME_LENGTH} printable characters, got {name[:40]!r}")
    return stripped


def _checked_types(session: Session, role: Role, types: builtins.list[str] | None) -> builtins.list[str] | None:
    if types is None:
        return None
    if role != "client":
        raise ValidationError(f"Only client tokens can be limited to interaction types, not {role} tokens")
    wanted = list(dict.fromkeys(types))  # the order given, without repeats
    if not wanted:
        raise ValidationError("Give at least one interaction type, or leave the limit out for all of them")
    known = list(session.scalars(select(InteractionType.name).order_by(InteractionType.name)))
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValidationError(
            f"Unknown interaction type(s) {', '.join(repr(name) for name in unknown)}; known: {', '.join(known)}"
        )
    return wanted
