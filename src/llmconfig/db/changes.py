"""The change seam: every committed change goes through :func:`record_change`, as a typed :class:`Change`.

One call, inside the transaction that makes the change:

1. adds the audit entry (who, what, the object before and after);
2. bumps the revision counter, which processes that cache resolutions compare with the value they saw;
3. announces the change: to this process once the transaction commits (so it sees its own writes at once),
   and on PostgreSQL to every other process with ``NOTIFY``, which the server delivers only on commit.

What changes without anyone editing it (a provider's validation outcome) skips the audit: :func:`announce`.

Whoever listens (the model cache, the server's read snapshot, the change stream) decodes the same
:class:`Change` it was sent, so what a write announces and what a cache drops cannot drift apart.
Audit snapshots are the public shapes of the changed objects (``ProviderPublic``, ``ConfigEntry`` …), which
have no field that can hold a key, so the trail cannot leak one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, String, Text, bindparam, cast, func, insert, select, update
from sqlalchemy.orm import Session

from llmconfig.db.models import AuditEntry, ConfigRevision

# PostgreSQL channel on which every committed change is announced (see llmconfig.db.notifications).
CHANGES_CHANNEL = "llmconfig_changes"
# Where a session keeps the announcements of its transaction until it commits.
PENDING_KEY = "llmconfig_changes"


class ChangeKind(StrEnum):
    """What kind of object changed; the cache decides from this what it must drop."""

    CONFIG = "config"  # the global entry of an interaction type
    OVERRIDE = "override"  # one user's entry of one interaction type
    GROUP_CONFIG = "group_config"  # one group's entry of one interaction type
    MEMBERSHIP = "membership"  # the ordered list of one user's groups
    GROUP = "group"  # a group as a whole (deleted with its entries and memberships)
    INTERACTION_TYPE = "interaction_type"
    PROVIDER = "provider"  # address, key, enabled flag or catalog of a provider
    TOKEN = "token"  # an API token (created, revoked)
    PRICE = "price"  # the price of a model, for usage costs
    BUDGET = "budget"  # a budget (created, changed, removed)
    SPEND = "spend"  # a budget became spent, or is no longer (announced by each process, never stored)
    SECRETS = "secrets"  # the secret store as a whole (a master key rotation)
    EVERYTHING = "*"  # anything may have changed: drop everything (a listener's resync, an unknown change)


@dataclass(frozen=True, slots=True)
class Change:
    """One changed object: its kind, the object's id (type name, provider id …), for overrides and memberships the
    user, for group entries the group."""

    kind: ChangeKind
    subject: str = ""
    user_id: str | None = None
    group: str | None = None

    @classmethod
    def config(cls, interaction_type: str) -> Change:
        return cls(ChangeKind.CONFIG, interaction_type)

    @classmethod
    def override(cls, user_id: str, interaction_type: str) -> Change:
        return cls(ChangeKind.OVERRIDE, interaction_type, user_id)

    @classmethod
    def group_config(cls, group: str, interaction_type: str) -> Change:
        return cls(ChangeKind.GROUP_CONFIG, interaction_type, group=group)

    @classmethod
    def membership(cls, user_id: str) -> Change:
        return cls(ChangeKind.MEMBERSHIP, user_id=user_id)

    @classmethod
    def group_of(cls, name: str) -> Change:
        """The group ``name`` as a whole (its deletion)."""
        return cls(ChangeKind.GROUP, name)

    @classmethod
    def interaction_type(cls, name: str) -> Change:
        return cls(ChangeKind.INTERACTION_TYPE, name)

    @classmethod
    def provider(cls, provider_id: str) -> Change:
        return cls(ChangeKind.PROVIDER, provider_id)

    @classmethod
    def token(cls, token_id: str) -> Change:
        return cls(ChangeKind.TOKEN, token_id)

    @classmethod
    def price(cls, model_name: str) -> Change:
        return cls(ChangeKind.PRICE, model_name)

    @classmethod
    def budget(cls, scope: str) -> Change:
        return cls(ChangeKind.BUDGET, scope)

    @classmethod
    def spend(cls, scope: str) -> Change:
        return cls(ChangeKind.SPEND, scope)

    @classmethod
    def secrets(cls, what: str) -> Change:
        return cls(ChangeKind.SECRETS, what)

    @classmethod
    def everything(cls) -> Change:
        return cls(ChangeKind.EVERYTHING)

    @property
    def audit_target(self) -> tuple[str, str]:
        """``(target_type, target_id)`` of the audit entry; overrides are ``<user>/<interaction type>``, group
        entries ``<group>/<interaction type>``, memberships ``<user>``."""
        if self.kind is ChangeKind.OVERRIDE:
            return self.kind.value, f"{self.user_id}/{self.subject}"
        if self.kind is ChangeKind.GROUP_CONFIG:
            return self.kind.value, f"{self.group}/{self.subject}"
        if self.kind is ChangeKind.MEMBERSHIP:
            return self.kind.value, self.user_id or ""
        return self.kind.value, self.subject

    def encode(self) -> str:
        """The wire form (``config:reasoning``, ``override:u-42/tools``, ``group_config:team-a/tools``,
        ``membership:u-42``, ``*``), read back by :meth:`decode`."""
        if self.kind is ChangeKind.EVERYTHING:
            return "*"
        target_type, target_id = self.audit_target
        return f"{target_type}:{target_id}"

    @classmethod
    def decode(cls, text: str) -> Change:
        """The change a wire form stands for; anything unrecognised means "everything" (fail safe)."""
        kind_text, _, target = text.partition(":")
        try:
            kind = ChangeKind(kind_text)
        except ValueError:
            return cls.everything()
        if kind is ChangeKind.OVERRIDE:
            # User ids may contain '/'; interaction type names may not.
            user_id, slash, interaction_type = target.rpartition("/")
            return cls.override(user_id, interaction_type) if slash else cls.everything()
        if kind is ChangeKind.GROUP_CONFIG:
            # Neither group names nor interaction type names may contain '/'.
            group, slash, interaction_type = target.partition("/")
            return cls.group_config(group, interaction_type) if slash else cls.everything()
        if kind is ChangeKind.MEMBERSHIP:
            return cls.membership(target)
        if kind is ChangeKind.EVERYTHING:
            return cls.everything()
        return cls(kind, target)


@dataclass(frozen=True, slots=True)
class Announcement:
    """A committed change and the revision it committed at (None when it is not known, as after a resync)."""

    change: Change
    revision: int | None = None

    def to_json(self) -> str:
        return json.dumps({"change": self.change.encode(), "revision": self.revision}, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str) -> Announcement:
        """Decode a NOTIFY payload; a payload that is not ours means "anything may have changed"."""
        try:
            data: Any = json.loads(payload)
            revision = data.get("revision")
            return cls(Change.decode(str(data["change"])), revision if isinstance(revision, int) else None)
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(Change.everything())


RESYNC = Announcement(Change.everything())


def snapshot(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


def record_change(
    session: Session,
    change: Change,
    *,
    actor: str,
    action: str,
    before: BaseModel | None = None,
    after: BaseModel | None = None,
) -> int:
    """Audit, bump the revision and announce ``change``; call inside the transaction that makes it.

    Returns the revision the change commits at.
    """
    target_type, target_id = change.audit_target
    # Core statements on the session's connection, built once: the ORM's unit of work and its bulk-update
    # machinery cost more than the statements themselves, on the path of every write.
    session.connection().execute(
        _AUDIT,
        {
            "actor": actor,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "before": snapshot(before),
            "after": snapshot(after),
        },
    )
    return announce(session, change)


_AUDIT = insert(AuditEntry)
_BUMP = update(ConfigRevision).where(ConfigRevision.id == 1).values(revision=ConfigRevision.revision + 1)
# On PostgreSQL the statement that bumps the revision also sends the NOTIFY (delivered on commit) with the
# revision it returns: one round trip instead of two. The payload has the keys Announcement.to_json writes.
_PAYLOAD = func.json_build_object("change", bindparam("change", type_=String()), "revision", ConfigRevision.revision)
_BUMP_AND_NOTIFY = _BUMP.returning(ConfigRevision.revision, func.pg_notify(CHANGES_CHANNEL, cast(_PAYLOAD, Text)))
_BUMP_ONLY = _BUMP.returning(ConfigRevision.revision)


def announce(session: Session, change: Change) -> int:
    """Bump the revision and announce ``change``, without an audit entry; call inside its transaction.

    For what changes without anyone editing it (a provider's validation outcome and refreshed catalog): what
    is derived from it (the server's read snapshot) must still be dropped, here and in every other process.
    Returns the revision the change commits at.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        result = connection.execute(_BUMP_AND_NOTIFY, {"change": change.encode()})
    else:
        result = connection.execute(_BUMP_ONLY)
    revision: int = result.scalars().one()
    session.info.setdefault(PENDING_KEY, []).append(Announcement(change, revision))
    return revision


_REVISION = select(ConfigRevision.revision).where(ConfigRevision.id == 1)


def read_revision(session: Session | Connection) -> int:
    """The revision counter: it grows with every committed change."""
    return session.scalar(_REVISION) or 0
