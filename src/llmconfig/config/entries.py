"""Configuration entries: the global entry of each interaction type, groups' entries and users' overrides.

Every write is one transaction, checked against the provider and its catalog (see ``checks``), versioned,
audited and announced through the change seam; history and rollback read the audit trail, where each change
recorded the entry as it was afterwards.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.config.checks import EntryRow, check_version, checked_values, provider_names, to_entry, update_of
from llmconfig.config.defaults import default_for
from llmconfig.config.groups import ensure_groups, find_group, groups_of
from llmconfig.config.schemas import (
    ConfigCheck,
    ConfigEntry,
    ConfigSource,
    ConfigUpdate,
    ConfigValidation,
    ConfigVersion,
    EffectiveEntry,
    check_group_name,
    check_user_id,
)
from llmconfig.config.types import InteractionTypeService, find_interaction_type, kind_of
from llmconfig.config.variants import choose
from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import AuditEntry, GlobalConfig, GroupConfig, InteractionType, Provider, UserConfig
from llmconfig.errors import ConcurrentChangeError, ConflictError, NotFoundError
from llmconfig.providers.service import ProviderService

log = logging.getLogger("llmconfig.config")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose entry: the global one (neither set), one user's override (``user_id``) or one group's (``group``)."""

    user_id: str | None = None
    group: str | None = None

    @property
    def source(self) -> ConfigSource:
        if self.user_id is not None:
            return "user"
        return "global" if self.group is None else f"group:{self.group}"

    def change(self, interaction_type: str) -> Change:
        if self.user_id is not None:
            return Change.override(self.user_id, interaction_type)
        if self.group is not None:
            return Change.group_config(self.group, interaction_type)
        return Change.config(interaction_type)

    def describe(self, interaction_type: str) -> str:
        if self.user_id is not None:
            return f"the override of {interaction_type!r} for {self.user_id!r}"
        if self.group is not None:
            return f"the entry of {interaction_type!r} for group {self.group!r}"
        return repr(interaction_type)

    def row(self, session: Session, interaction_type: str) -> EntryRow | None:
        """The stored entry, with its provider in the same statement (the entry before a change names it).

        The provider's keys, which it otherwise loads with it, are left unread: an entry does not show them,
        and reading them is one more round trip on the path of every write.
        """
        if self.user_id is not None:
            return session.scalar(
                select(UserConfig)
                .where(UserConfig.user_id == self.user_id, UserConfig.interaction_type == interaction_type)
                .options(joinedload(UserConfig.provider).lazyload(Provider.keys))
            )
        if self.group is not None:
            return session.scalar(
                select(GroupConfig)
                .where(GroupConfig.group_name == self.group, GroupConfig.interaction_type == interaction_type)
                .options(joinedload(GroupConfig.provider).lazyload(Provider.keys))
            )
        return session.get(
            GlobalConfig, interaction_type, options=[joinedload(GlobalConfig.provider).lazyload(Provider.keys)]
        )

    def new_row(self, session: Session, interaction_type: str, values: dict[str, object]) -> EntryRow:
        if self.user_id is not None:
            return UserConfig(user_id=self.user_id, interaction_type=interaction_type, **values)
        if self.group is not None:
            ensure_groups(session, [self.group])
            return GroupConfig(group_name=self.group, interaction_type=interaction_type, **values)
        return GlobalConfig(interaction_type=interaction_type, **values)


GLOBAL = Scope()


def scope_of(user_id: str | None = None, group: str | None = None) -> Scope:
    """The scope of an entry, its owner checked (a user id, or a group name); global without either."""
    if user_id is not None and group is not None:
        raise ValueError("an entry belongs to a user or to a group, not both")
    if user_id is not None:
        return Scope(user_id=check_user_id(user_id))
    if group is not None:
        return Scope(group=check_group_name(group))
    return GLOBAL


class EntryService:
    """Reads and changes the global entries, the groups' entries and the users' overrides."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        providers: ProviderService,
        types: InteractionTypeService,
        environment_fallback: bool = False,
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self._types = types
        # Whether OPENAI_API_KEY is set, so that types without an entry resolve to the environment fallback.
        self._environment_fallback = environment_fallback

    # -- global configuration ----------------------------------------------------------------------

    def get_global(self) -> dict[str, ConfigEntry]:
        with transaction(self._sessions) as session:
            kinds, names = self._kinds(session), provider_names(session)
            rows = session.scalars(select(GlobalConfig).order_by(GlobalConfig.interaction_type))
            return {
                row.interaction_type: to_entry(row, kinds[row.interaction_type], source="global", names=names)
                for row in rows
            }

    def get_entry(self, interaction_type: str) -> ConfigEntry:
        with transaction(self._sessions) as session:
            kind = kind_of(session, interaction_type)
            row = session.get(GlobalConfig, interaction_type)
            if row is None:
                raise NotFoundError(
                    f"{interaction_type!r} is not configured; set it with "
                    f"`llmconfig config set {interaction_type} --provider NAME --model MODEL`"
                )
            return to_entry(row, kind, source="global", names=provider_names(session))

    def set_global(self, interaction_type: str, update: ConfigUpdate, *, actor: str) -> ConfigEntry:
        """Create or change the global entry of one interaction type, in one transaction."""
        return self._write(interaction_type, GLOBAL, update, actor=actor)

    # -- group entries -----------------------------------------------------------------------------

    def group_entries(self, group: str) -> dict[str, ConfigEntry]:
        """One group's entries, keyed by interaction type; NotFoundError for a group that does not exist."""
        with transaction(self._sessions) as session:
            find_group(session, group)
            kinds, names = self._kinds(session), provider_names(session)
            rows = session.scalars(
                select(GroupConfig).where(GroupConfig.group_name == group).order_by(GroupConfig.interaction_type)
            )
            return {
                row.interaction_type: to_entry(row, kinds[row.interaction_type], source=f"group:{group}", names=names)
                for row in rows
            }

    def set_group_entry(self, group: str, interaction_type: str, update: ConfigUpdate, *, actor: str) -> ConfigEntry:
        """Create or change a group's entry of one interaction type (creating the group if it is new); it wins
        over the global entry for the group's members."""
        return self._write(interaction_type, scope_of(group=group), update, actor=actor)

    def clear_group_entry(self, group: str, interaction_type: str, *, actor: str = "system") -> None:
        """Remove a group's entry; its members follow their next group, or the global entry, again."""
        self._clear(interaction_type, scope_of(group=group), actor=actor)

    # -- user overrides ----------------------------------------------------------------------------

    def set_override(self, user_id: str, interaction_type: str, update: ConfigUpdate, *, actor: str) -> ConfigEntry:
        """Create or change one user's override of one interaction type; it wins over groups and global."""
        return self._write(interaction_type, scope_of(user_id=user_id), update, actor=actor)

    def clear_override(self, user_id: str, interaction_type: str, *, actor: str = "system") -> None:
        """Remove one user's override; the user follows their groups, or the global entry, again."""
        self._clear(interaction_type, scope_of(user_id=user_id), actor=actor)

    def overrides(self, user_id: str) -> dict[str, ConfigEntry]:
        """One user's overrides, keyed by interaction type."""
        check_user_id(user_id)
        with transaction(self._sessions) as session:
            kinds, names = self._kinds(session), provider_names(session)
            rows = session.scalars(select(UserConfig).where(UserConfig.user_id == user_id))
            return {
                row.interaction_type: to_entry(row, kinds[row.interaction_type], source="user", names=names)
                for row in rows
            }

    def effective(self, user_id: str) -> dict[str, EffectiveEntry]:
        """For each interaction type, the entry in force for ``user_id`` and where it comes from: the user's
        override, the first of the user's groups with an entry, the global entry, or the environment."""
        check_user_id(user_id)
        with transaction(self._sessions) as session:
            kinds, names = self._kinds(session), provider_names(session)
            layers: list[dict[str, ConfigEntry]] = [self.overrides(user_id)]
            groups = groups_of(session, user_id)
            by_group: dict[str, dict[str, ConfigEntry]] = {group: {} for group in groups}
            for row in session.scalars(select(GroupConfig).where(GroupConfig.group_name.in_(groups))):
                by_group[row.group_name][row.interaction_type] = to_entry(
                    row, kinds[row.interaction_type], source=f"group:{row.group_name}", names=names
                )
            layers += [by_group[group] for group in groups]
        layers.append(self.get_global())
        result: dict[str, EffectiveEntry] = {}
        for info in self._types.list():
            found = next((layer[info.name] for layer in layers if info.name in layer), None)
            if found is not None:
                effective = EffectiveEntry.model_validate(found.model_dump())
                if effective.variants:
                    effective.variant = choose(effective, user_id)
                result[info.name] = effective
            elif self._environment_fallback:
                default = default_for(info.name, info.kind)
                result[info.name] = EffectiveEntry(
                    interaction_type=info.name,
                    kind=info.kind,
                    source="env",
                    provider_id=None,
                    provider_name="OPENAI_API_KEY",
                    model_name=default.model_name,
                    temperature=default.temperature,
                    max_tokens=None,
                    extra_params={},
                    fallbacks=[],
                    version=None,
                    updated_at=None,
                    updated_by=None,
                )
        return result

    # -- history -----------------------------------------------------------------------------------

    def history(
        self, interaction_type: str, user_id: str | None = None, *, group: str | None = None
    ) -> list[ConfigVersion]:
        """Every version of a global entry (or of one user's override, or one group's entry), newest first.

        The audit trail is the store: each change recorded the entry as it was afterwards.
        """
        target_type, target_id = scope_of(user_id, group).change(interaction_type).audit_target
        with transaction(self._sessions) as session:
            find_interaction_type(session, interaction_type)
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target_type == target_type, AuditEntry.target_id == target_id)
                .where(AuditEntry.after.is_not(None))
                .order_by(AuditEntry.id.desc())
            )
            return [
                ConfigVersion(
                    version=row.after["version"],
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    entry=ConfigEntry.model_validate(row.after),
                )
                for row in rows
                if row.after is not None
            ]

    def rollback(
        self,
        interaction_type: str,
        version: int,
        *,
        user_id: str | None = None,
        group: str | None = None,
        actor: str = "system",
    ) -> ConfigEntry:
        """Restore the fields of an earlier version, as a new version (audited as a rollback)."""
        scope = scope_of(user_id, group)
        earlier = next((v for v in self.history(interaction_type, user_id, group=group) if v.version == version), None)
        if earlier is None:
            owner = f" for user {user_id!r}" if user_id else f" for group {group!r}" if group else ""
            raise NotFoundError(f"{interaction_type!r} has no version {version}{owner}; list them with GET .../history")
        return self._write(interaction_type, scope, update_of(earlier.entry), actor=actor, verb="rollback")

    # -- writing -----------------------------------------------------------------------------------

    def _write(
        self, interaction_type: str, scope: Scope, update: ConfigUpdate, *, actor: str, verb: str | None = None
    ) -> ConfigEntry:
        """Create or change the entry of ``scope``, audited, in one transaction."""
        what = scope.describe(interaction_type)
        try:
            with transaction(self._sessions, write=True) as session:
                kind = kind_of(session, interaction_type)
                row = scope.row(session, interaction_type)
                check_version(what, row, update.version)
                # Names of other providers are needed only to show an entry's variants.
                has_variants = (row is not None and row.variants) or ("variants" in update.model_fields_set)
                names = provider_names(session) if has_variants else {}
                before = None if row is None else to_entry(row, kind, source=scope.source, names=names)
                values, provider = checked_values(session, kind, update, current=row)
                if row is None:
                    row = scope.new_row(session, interaction_type, values)
                    session.add(row)
                else:
                    for name, value in values.items():
                        setattr(row, name, value)
                    if not session.is_modified(row):
                        # Saving what is already there is not a new version: no audit entry, no cache drop.
                        assert before is not None  # the row existed
                        return before
                # The relationship follows provider_id, so the entry after the change is known without reading
                # the row back: every other column is set here or by a Python-side default at flush.
                if row.provider is not provider:
                    row.provider = provider
                row.updated_by = actor
                session.flush()
                after = to_entry(row, kind, source=scope.source, names=names)
                change = scope.change(interaction_type)
                record_change(
                    session,
                    change,
                    actor=actor,
                    action=f"{change.kind}.{verb or ('update' if before else 'create')}",
                    before=before,
                    after=after,
                )
                return after
        except (StaleDataError, IntegrityError, ConcurrentChangeError):
            # Another writer updated (or created) the same entry between our read and our write.
            raise ConflictError.overtaken(what, "reload it and apply your change again") from None

    def _clear(self, interaction_type: str, scope: Scope, *, actor: str) -> None:
        if scope.user_id is not None:
            missing = f"User {scope.user_id!r} has no override for {interaction_type!r}"
        else:
            missing = f"Group {scope.group!r} has no entry for {interaction_type!r}"
        try:
            with transaction(self._sessions, write=True) as session:
                kind = kind_of(session, interaction_type)
                row = scope.row(session, interaction_type)
                if row is None:
                    raise NotFoundError(missing)
                change = scope.change(interaction_type)
                record_change(
                    session,
                    change,
                    actor=actor,
                    action=f"{change.kind}.delete",
                    before=to_entry(row, kind, source=scope.source, names=provider_names(session)),
                )
                session.delete(row)
        except ConcurrentChangeError:
            # Someone removed (or replaced) it at the same moment: it is not there to remove.
            raise NotFoundError(missing) from None

    @staticmethod
    def _kinds(session: Session) -> dict[str, str]:
        return {name: kind for name, kind in session.execute(select(InteractionType.name, InteractionType.kind))}

    # -- summary and validation --------------------------------------------------------------------

    def summary(self) -> str:
        """One human-readable line per interaction type."""
        entries = self.get_global()
        lines = []
        for info in self._types.list():
            entry = entries.get(info.name)
            if entry is None:
                lines.append(f"{info.name}: not configured")
                continue
            details = [f"temperature {entry.temperature}" if entry.temperature is not None else "default temperature"]
            if entry.max_tokens is not None:
                details.append(f"max tokens {entry.max_tokens}")
            if entry.fallbacks:
                details.append(f"{len(entry.fallbacks)} fallback(s)")
            if entry.variants:
                split = ", ".join(f"{name} {weight}" for name, weight in entry.variant_weights)
                details.append(f"variants by weight: {split}")
            lines.append(f"{info.name}: {entry.provider_name} / {entry.model_name} ({', '.join(details)})")
        return "\n".join(lines)

    def validate(self) -> ConfigValidation:
        """Check every configured interaction type: its provider answers and still offers its model.

        Providers are checked concurrently, each once, so the whole check takes about as long as the
        slowest provider rather than the sum of them. Nothing is written: it is a check anyone may run.
        """
        entries = self.get_global()
        provider_ids = sorted({entry.provider_id for entry in entries.values()})
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(provider_ids)))) as pool:
            checks = dict(zip(provider_ids, pool.map(self._providers.check, provider_ids), strict=True))
        results: dict[str, ConfigCheck] = {}
        for name, entry in entries.items():
            _, outcome, discovery = checks[entry.provider_id]
            offered = {m.model_name for m in discovery.models} if discovery is not None else set()
            if not outcome.ok:
                results[name] = ConfigCheck(ok=False, status=outcome.status, detail=outcome.detail)
            elif offered and entry.model_name not in offered:
                results[name] = ConfigCheck(
                    ok=False,
                    status="model_missing",
                    detail=f"{entry.provider_name} no longer offers {entry.model_name!r}; choose another model",
                )
            else:
                results[name] = ConfigCheck(ok=True, status="ok", detail=f"{entry.provider_name} / {entry.model_name}")
        return ConfigValidation(ok=all(r.ok for r in results.values()), results=results)
