"""Groups of users: each user's ordered list of groups, the groups with their members and entries, deletion.

A group is a row of its own (``groups``), created the first time a membership or an entry names it, so that
whatever refers to a group (entries, memberships, budgets) refers to a row. It stays, with or without
members, until it is deleted. Deleting a group removes its entries and its memberships in one transaction;
each of them is audited, so the history of the group's entries shows where they went.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.config.checks import provider_names, to_entry
from llmconfig.config.schemas import (
    GroupInfo,
    GroupMembership,
    GroupMembershipUpdate,
    check_group_name,
    check_user_id,
)
from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import Budget, Group, GroupConfig, GroupMember, InteractionType, utcnow
from llmconfig.errors import ConcurrentChangeError, ConflictError, NotFoundError


def ensure_groups(session: Session, names: Iterable[str]) -> None:
    """Create the groups among ``names`` that do not exist yet (a writer creating the same one is no clash)."""
    wanted = sorted(set(names))
    if not wanted:
        return
    existing = set(session.scalars(select(Group.name).where(Group.name.in_(wanted))))
    missing = [{"name": name, "created_at": utcnow()} for name in wanted if name not in existing]
    if not missing:
        return
    dialect = session.get_bind().dialect.name
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Group)
    session.execute(statement.on_conflict_do_nothing(index_elements=["name"]), missing)


def groups_of(session: Session, user_id: str) -> list[str]:
    """``user_id``'s groups, in order."""
    return list(
        session.scalars(
            select(GroupMember.group_name).where(GroupMember.user_id == user_id).order_by(GroupMember.position)
        )
    )


def _store_membership(session: Session, user_id: str, groups: list[str]) -> None:
    # Core statements, run in this order: the ORM could insert the new rows before deleting the old ones.
    session.execute(delete(GroupMember).where(GroupMember.user_id == user_id))
    if groups:
        session.execute(
            insert(GroupMember),
            [{"user_id": user_id, "group_name": name, "position": position} for position, name in enumerate(groups)],
        )


def find_group(session: Session, name: str) -> Group:
    """The group ``name``, or NotFoundError naming the known ones."""
    check_group_name(name)
    group = session.get(Group, name)
    if group is None:
        known = ", ".join(session.scalars(select(Group.name).order_by(Group.name).limit(20))) or "none yet"
        raise NotFoundError(
            f"Unknown group {name!r}; known groups: {known}. A group comes into being with its first member "
            "(PUT /users/{user_id}/groups) or entry (PUT /groups/{group}/config/{interaction_type})"
        )
    return group


class GroupService:
    """Reads and changes users' group memberships, lists groups and deletes them."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def membership(self, user_id: str) -> GroupMembership:
        """``user_id``'s groups in order (an empty list for a user in no group)."""
        check_user_id(user_id)
        with transaction(self._sessions) as session:
            return GroupMembership(user_id=user_id, groups=groups_of(session, user_id))

    def set_membership(self, user_id: str, update: GroupMembershipUpdate, *, actor: str) -> GroupMembership:
        """Replace ``user_id``'s groups with ``update.groups`` in that order, creating groups that are new."""
        check_user_id(user_id)
        try:
            with transaction(self._sessions, write=True) as session:
                before = GroupMembership(user_id=user_id, groups=groups_of(session, user_id))
                after = GroupMembership(user_id=user_id, groups=list(update.groups))
                if before == after:
                    return after  # nothing changes: no audit entry, no cache drop
                ensure_groups(session, after.groups)
                _store_membership(session, user_id, after.groups)
                record_change(
                    session,
                    Change.membership(user_id),
                    actor=actor,
                    action="membership.update",
                    before=before,
                    after=after,
                )
                return after
        except ConcurrentChangeError:
            raise ConflictError(
                f"The groups of user {user_id!r} were changed by someone else meanwhile (or one of the groups was "
                "deleted); reload them and apply your change again"
            ) from None

    def list(self) -> builtins.list[GroupInfo]:
        """Every group by name, with its members and the interaction types it has entries for."""
        with transaction(self._sessions) as session:
            members: dict[str, list[str]] = defaultdict(list)
            for name, user_id in session.execute(
                select(GroupMember.group_name, GroupMember.user_id).order_by(GroupMember.user_id)
            ):
                members[name].append(user_id)
            types: dict[str, list[str]] = defaultdict(list)
            for name, interaction_type in session.execute(
                select(GroupConfig.group_name, GroupConfig.interaction_type).order_by(GroupConfig.interaction_type)
            ):
                types[name].append(interaction_type)
            return [
                GroupInfo(
                    name=group.name,
                    members=members[group.name],
                    interaction_types=types[group.name],
                    created_at=group.created_at,
                )
                for group in session.scalars(select(Group).order_by(Group.name))
            ]

    def delete(self, name: str, *, actor: str = "system") -> None:
        """Delete group ``name`` with its entries and memberships; its members follow their other groups."""
        try:
            self._delete(name, actor=actor)
        except ConcurrentChangeError:
            raise ConflictError(
                f"Group {name!r} was changed by someone else while it was being deleted; nothing was deleted, "
                "reload and try again"
            ) from None

    def _delete(self, name: str, *, actor: str) -> None:
        with transaction(self._sessions, write=True) as session:
            group = find_group(session, name)
            if session.get(Budget, f"group:{name}") is not None:
                raise ConflictError(
                    f"Group {name!r} is in use by the budget of group:{name}; remove that budget first "
                    f"(DELETE /budgets/group:{name})"
                )
            kinds = dict(session.execute(select(InteractionType.name, InteractionType.kind)).all())
            names = provider_names(session)
            entries = session.scalars(select(GroupConfig).where(GroupConfig.group_name == name)).all()
            members = session.scalars(select(GroupMember.user_id).where(GroupMember.group_name == name)).all()
            info = GroupInfo(
                name=name,
                members=sorted(members),
                interaction_types=sorted(entry.interaction_type for entry in entries),
                created_at=group.created_at,
            )
            for entry in entries:
                record_change(
                    session,
                    Change.group_config(name, entry.interaction_type),
                    actor=actor,
                    action="group_config.delete",
                    before=to_entry(entry, kinds[entry.interaction_type], source=f"group:{name}", names=names),
                )
                session.delete(entry)
            for user_id in sorted(members):
                before = groups_of(session, user_id)
                after = [group_name for group_name in before if group_name != name]
                _store_membership(session, user_id, after)
                record_change(
                    session,
                    Change.membership(user_id),
                    actor=actor,
                    action="membership.update",
                    before=GroupMembership(user_id=user_id, groups=before),
                    after=GroupMembership(user_id=user_id, groups=after),
                )
            session.flush()
            record_change(session, Change.group_of(name), actor=actor, action="group.delete", before=info)
            session.delete(group)
