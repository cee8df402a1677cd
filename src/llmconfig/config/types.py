"""Interaction types: the built-in ones and those operators add (and may delete while nothing uses them)."""

from __future__ import annotations

import builtins

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.config.defaults import BUILTIN_DEFAULTS
from llmconfig.config.schemas import InteractionTypeCreate, InteractionTypeInfo
from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import GlobalConfig, GroupConfig, InteractionType, UserConfig
from llmconfig.errors import ConcurrentChangeError, ConflictError, NotFoundError


def find_interaction_type(session: Session, name: str) -> InteractionType:
    """The interaction type called ``name``, or NotFoundError naming the known ones."""
    interaction_type = session.get(InteractionType, name)
    if interaction_type is None:
        raise _unknown(session, name)
    return interaction_type


_KIND = select(InteractionType.kind).where(InteractionType.name == bindparam("name"))


def kind_of(session: Session, name: str) -> str:
    """The kind of the interaction type called ``name``, or NotFoundError naming the known ones.

    For the write paths, which need only the kind: one Core statement, without loading the row into the session.
    """
    kind = session.execute(_KIND, {"name": name}).scalar()
    if kind is None:
        raise _unknown(session, name)
    return kind


def _unknown(session: Session, name: str) -> NotFoundError:
    known = ", ".join(session.scalars(select(InteractionType.name).order_by(InteractionType.name)))
    return NotFoundError(f"Unknown interaction type {name!r}; known types: {known}")


def _info(row: InteractionType) -> InteractionTypeInfo:
    return InteractionTypeInfo.model_validate(row, from_attributes=True)


class InteractionTypeService:
    """Lists, adds and deletes interaction types."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def list(self) -> builtins.list[InteractionTypeInfo]:
        """Built-ins in their documented order, then the operators' own types alphabetically."""
        with transaction(self._sessions) as session:
            infos = [_info(row) for row in session.scalars(select(InteractionType))]
        order = builtins.list(BUILTIN_DEFAULTS)
        return sorted(infos, key=lambda t: (order.index(t.name) if t.name in order else len(order), t.name))

    def add(self, data: InteractionTypeCreate, *, actor: str = "system") -> InteractionTypeInfo:
        """Add an operator-defined interaction type; it can then be configured like the built-in ones."""
        try:
            with transaction(self._sessions, write=True) as session:
                if session.get(InteractionType, data.name) is not None:
                    raise ConflictError(f"Interaction type {data.name!r} already exists")
                row = InteractionType(name=data.name, kind=data.kind, description=data.description, builtin=False)
                session.add(row)
                session.flush()
                info = _info(row)
                record_change(
                    session,
                    Change.interaction_type(data.name),
                    actor=actor,
                    action="interaction_type.create",
                    after=info,
                )
                return info
        except (IntegrityError, ConcurrentChangeError):
            raise ConflictError(f"Interaction type {data.name!r} already exists") from None

    def delete(self, name: str, *, actor: str = "system") -> None:
        """Delete an operator-defined type; refused for built-ins and while anything configures it."""
        try:
            with transaction(self._sessions, write=True) as session:
                row = find_interaction_type(session, name)
                if row.builtin:
                    raise ConflictError(f"{name!r} is a built-in interaction type and cannot be deleted")
                users = session.scalars(select(UserConfig.user_id).where(UserConfig.interaction_type == name)).all()
                groups = session.scalars(
                    select(GroupConfig.group_name).where(GroupConfig.interaction_type == name)
                ).all()
                if session.get(GlobalConfig, name) is not None or users or groups:
                    held = [f"overrides for {len(users)} user(s)"] if users else []
                    held += [f"entries for group(s) {', '.join(sorted(groups))}"] if groups else []
                    raise ConflictError(
                        f"{name!r} is still configured"
                        + (f" (with {' and '.join(held)})" if held else "")
                        + "; remove its configuration first"
                    )
                record_change(
                    session,
                    Change.interaction_type(name),
                    actor=actor,
                    action="interaction_type.delete",
                    before=_info(row),
                )
                session.delete(row)
        except ConcurrentChangeError:
            # Configured by a change that committed while we were deleting.
            raise ConflictError(f"{name!r} is still configured; remove its configuration first") from None
