"""Configuration entries: the global entry of each interaction type and users' overrides of it.

Every write is one transaction, checked against the provider and its catalog, versioned, audited and
announced through the change seam; history and rollback read the audit trail, where each change recorded the
entry as it was afterwards.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.config.defaults import default_for
from llmconfig.config.schemas import (
    ConfigCheck,
    ConfigEntry,
    ConfigSource,
    ConfigUpdate,
    ConfigValidation,
    ConfigVersion,
    EffectiveEntry,
    FallbackTarget,
    check_user_id,
)
from llmconfig.config.types import InteractionTypeService, find_interaction_type
from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import AuditEntry, GlobalConfig, InteractionType, Provider, UserConfig
from llmconfig.errors import ConcurrentChangeError, ConflictError, NotFoundError
from llmconfig.providers.service import ProviderService, usable_provider

log = logging.getLogger("llmconfig.config")


def _entry(row: GlobalConfig | UserConfig, kind: str, *, source: ConfigSource) -> ConfigEntry:
    return ConfigEntry.model_validate(
        {
            "interaction_type": row.interaction_type,
            "kind": kind,
            "provider_id": row.provider_id,
            "provider_name": row.provider.name,
            "model_name": row.model_name,
            "temperature": row.temperature,
            "max_tokens": row.max_tokens,
            "extra_params": row.extra_params or {},
            "fallbacks": row.fallbacks or [],
            "version": row.version,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
            "source": source,
        }
    )


class EntryService:
    """Reads and changes the global entries and the users' overrides."""

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
            kinds = self._kinds(session)
            rows = session.scalars(select(GlobalConfig).order_by(GlobalConfig.interaction_type))
            return {row.interaction_type: _entry(row, kinds[row.interaction_type], source="global") for row in rows}

    def get_entry(self, interaction_type: str) -> ConfigEntry:
        with transaction(self._sessions) as session:
            kind = find_interaction_type(session, interaction_type).kind
            row = session.get(GlobalConfig, interaction_type)
            if row is None:
                raise NotFoundError(
                    f"{interaction_type!r} is not configured; set it with "
                    f"`llmconfig config set {interaction_type} --provider NAME --model MODEL`"
                )
            return _entry(row, kind, source="global")

    def set_global(self, interaction_type: str, update: ConfigUpdate, *, actor: str) -> ConfigEntry:
        """Create or change the global entry of one interaction type, in one transaction."""
        return self._write(interaction_type, None, update, actor=actor)

    # -- user overrides ----------------------------------------------------------------------------

    def set_override(self, user_id: str, interaction_type: str, update: ConfigUpdate, *, actor: str) -> ConfigEntry:
        """Create or change one user's override of one interaction type; it wins over the global entry."""
        return self._write(interaction_type, check_user_id(user_id), update, actor=actor)

    def clear_override(self, user_id: str, interaction_type: str, *, actor: str = "system") -> None:
        """Remove one user's override; the user follows the global entry again."""
        check_user_id(user_id)
        try:
            self._clear_override(user_id, interaction_type, actor=actor)
        except ConcurrentChangeError:
            # Someone removed (or replaced) it at the same moment: it is not there to remove.
            raise NotFoundError(f"User {user_id!r} has no override for {interaction_type!r}") from None

    def _clear_override(self, user_id: str, interaction_type: str, *, actor: str) -> None:
        with transaction(self._sessions, write=True) as session:
            kind = find_interaction_type(session, interaction_type).kind
            row = self._override_row(session, user_id, interaction_type)
            if row is None:
                raise NotFoundError(f"User {user_id!r} has no override for {interaction_type!r}")
            record_change(
                session,
                Change.override(user_id, interaction_type),
                actor=actor,
                action="override.delete",
                before=_entry(row, kind, source="user"),
            )
            session.delete(row)

    def overrides(self, user_id: str) -> dict[str, ConfigEntry]:
        """One user's overrides, keyed by interaction type."""
        check_user_id(user_id)
        with transaction(self._sessions) as session:
            kinds = self._kinds(session)
            rows = session.scalars(select(UserConfig).where(UserConfig.user_id == user_id))
            return {row.interaction_type: _entry(row, kinds[row.interaction_type], source="user") for row in rows}

    def effective(self, user_id: str) -> dict[str, EffectiveEntry]:
        """For each interaction type, the entry in force for ``user_id``: override, global, or environment."""
        overrides = self.overrides(user_id)
        entries = self.get_global()
        result: dict[str, EffectiveEntry] = {}
        for info in self._types.list():
            entry = overrides.get(info.name) or entries.get(info.name)
            if entry is not None:
                result[info.name] = EffectiveEntry.model_validate(entry.model_dump())
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

    def history(self, interaction_type: str, user_id: str | None = None) -> list[ConfigVersion]:
        """Every version of a global entry (or of one user's override), newest first.

        The audit trail is the store: each change recorded the entry as it was afterwards.
        """
        if user_id is not None:
            check_user_id(user_id)
        target_type, target_id = _change_of(interaction_type, user_id).audit_target
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
        self, interaction_type: str, version: int, *, user_id: str | None = None, actor: str = "system"
    ) -> ConfigEntry:
        """Restore the fields of an earlier version, as a new version (audited as a rollback)."""
        earlier = next((v for v in self.history(interaction_type, user_id) if v.version == version), None)
        if earlier is None:
            raise NotFoundError(
                f"{interaction_type!r} has no version {version}"
                + (f" for user {user_id!r}" if user_id else "")
                + "; list them with GET .../history"
            )
        entry = earlier.entry
        update = ConfigUpdate(
            provider_id=entry.provider_id,
            model_name=entry.model_name,
            temperature=entry.temperature,
            max_tokens=entry.max_tokens,
            extra_params=entry.extra_params,
            fallbacks=entry.fallbacks,
        )
        return self._write(interaction_type, user_id, update, actor=actor, verb="rollback")

    def _write(
        self, interaction_type: str, user_id: str | None, update: ConfigUpdate, *, actor: str, verb: str | None = None
    ) -> ConfigEntry:
        """Create or change a global entry (``user_id`` None) or an override, audited, in one transaction."""
        what = repr(interaction_type) if user_id is None else f"the override of {interaction_type!r} for {user_id!r}"
        source: ConfigSource = "global" if user_id is None else "user"
        try:
            with transaction(self._sessions, write=True) as session:
                kind = find_interaction_type(session, interaction_type).kind
                row: GlobalConfig | UserConfig | None
                if user_id is None:
                    # With its provider in the same statement: the entry before the change names it.
                    row = session.get(GlobalConfig, interaction_type, options=[joinedload(GlobalConfig.provider)])
                else:
                    row = self._override_row(session, user_id, interaction_type)
                self._check_version(what, row, update.version)
                before = None if row is None else _entry(row, kind, source=source)
                values, provider = self._checked_values(session, kind, update, current=row)
                if row is None:
                    if user_id is None:
                        row = GlobalConfig(interaction_type=interaction_type, **values)
                    else:
                        row = UserConfig(user_id=user_id, interaction_type=interaction_type, **values)
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
                after = _entry(row, kind, source=source)
                change = _change_of(interaction_type, user_id)
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
            raise ConflictError(
                f"{what[0].upper()}{what[1:]} was changed by someone else meanwhile; "
                "reload it and apply your change again"
            ) from None

    @staticmethod
    def _kinds(session: Session) -> dict[str, str]:
        return {name: kind for name, kind in session.execute(select(InteractionType.name, InteractionType.kind))}

    @staticmethod
    def _override_row(session: Session, user_id: str, interaction_type: str) -> UserConfig | None:
        return session.scalar(
            select(UserConfig)
            .where(UserConfig.user_id == user_id, UserConfig.interaction_type == interaction_type)
            .options(joinedload(UserConfig.provider))
        )

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

    # -- internals ---------------------------------------------------------------------------------

    @staticmethod
    def _check_version(what: str, row: GlobalConfig | UserConfig | None, version: int | None) -> None:
        if version is None:
            return
        current = row.version if row is not None else 0
        if version != current:
            raise ConflictError(
                f"{what[0].upper()}{what[1:]} was changed by someone else "
                f"(you sent version {version}, it is now at {current}); reload it and apply your change again"
            )

    def _checked_values(
        self, session: Session, kind: str, update: ConfigUpdate, *, current: GlobalConfig | UserConfig | None
    ) -> tuple[dict[str, Any], Provider]:
        """The columns to store for ``update`` (checked against the providers and their catalogs), and its provider."""
        known = current.provider if current is not None else None
        provider = usable_provider(session, update.provider_id, kind, update.model_name, known=known)
        given = update.model_fields_set
        fallbacks = update.fallbacks if "fallbacks" in given else None
        values: dict[str, Any] = {
            "provider_id": provider.id,
            "model_name": update.model_name,
            "temperature": _pick("temperature", update, current, given),
            "max_tokens": _pick("max_tokens", update, current, given),
            "extra_params": _pick("extra_params", update, current, given) or {},
        }
        if fallbacks is None and current is not None and "fallbacks" not in given:
            values["fallbacks"] = current.fallbacks
        else:
            checked: list[dict[str, str]] = []
            for fallback in fallbacks or []:
                target = usable_provider(session, fallback.provider_id, kind, fallback.model_name, known=provider)
                checked.append(FallbackTarget(provider_id=target.id, model_name=fallback.model_name).model_dump())
            values["fallbacks"] = checked
        return values, provider


def _change_of(interaction_type: str, user_id: str | None) -> Change:
    return Change.config(interaction_type) if user_id is None else Change.override(user_id, interaction_type)


def _pick(name: str, update: ConfigUpdate, current: GlobalConfig | UserConfig | None, given: set[str]) -> Any:
    if name in given or current is None:
        return getattr(update, name)
    return getattr(current, name)
