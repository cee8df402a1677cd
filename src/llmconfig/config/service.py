"""Interaction types, global configuration and user overrides, and how a request resolves against them."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig import audit
from llmconfig.config.defaults import BUILTIN_DEFAULTS, default_for
from llmconfig.config.resolution import Resolution, Target, freeze_params
from llmconfig.config.schemas import (
    ConfigCheck,
    ConfigEntry,
    ConfigUpdate,
    ConfigValidation,
    ConfigVersion,
    EffectiveEntry,
    FallbackTarget,
    InteractionTypeCreate,
    InteractionTypeInfo,
    has_control_characters,
)
from llmconfig.db.engine import bump_revision, read_revision, reading, transaction
from llmconfig.db.models import (
    AuditEntry,
    ConfigRevision,
    GlobalConfig,
    InteractionType,
    Provider,
    ProviderModel,
    UserConfig,
)
from llmconfig.errors import ConcurrentChangeError, ConflictError, LLMConfigError, NotFoundError, ValidationError
from llmconfig.providers.adapters import adapter_for
from llmconfig.providers.service import ProviderService, find_provider

log = logging.getLogger("llmconfig.config")


def find_interaction_type(session: Session, name: str) -> InteractionType:
    interaction_type = session.get(InteractionType, name)
    if interaction_type is None:
        known = ", ".join(session.scalars(select(InteractionType.name).order_by(InteractionType.name)))
        raise NotFoundError(f"Unknown interaction type {name!r}; known types: {known}")
    return interaction_type


MAX_USER_ID_LENGTH = 255


def storable_user_id(user_id: str) -> bool:
    """Whether an override can exist for ``user_id`` (the column's length, and no control characters)."""
    return 0 < len(user_id) <= MAX_USER_ID_LENGTH and not has_control_characters(user_id)


def check_user_id(user_id: str) -> str:
    if not storable_user_id(user_id):
        raise ValidationError(
            f"A user id must be 1 to {MAX_USER_ID_LENGTH} characters without control characters (NUL, newlines …)"
        )
    return user_id


def _entry(row: GlobalConfig | UserConfig, kind: str, *, source: str) -> ConfigEntry:
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


_PROVIDER_COLUMNS = (
    Provider.id,
    Provider.name,
    Provider.provider_type,
    Provider.version,
    Provider.api_base_url,
    Provider.api_key_ref,
    Provider.enabled,
)


def _entry_columns(table: type[GlobalConfig] | type[UserConfig]) -> tuple[Any, ...]:
    """An entry's settings followed by its provider's columns."""
    return (
        table.model_name,
        table.temperature,
        table.max_tokens,
        table.extra_params,
        table.fallbacks,
        *_PROVIDER_COLUMNS,
    )


# The statements of ``ConfigService.resolve``, built once: building a statement costs about as much as
# running it on SQLite, and these run on every cache miss of ``get_llm``.

# The revision counter, the type's kind and its global entry with that entry's provider, in one row. The
# entry's columns are NULL when nothing is configured globally; no row means no such interaction type.
_RESOLVE_GLOBAL = (
    select(ConfigRevision.revision, InteractionType.kind, *_entry_columns(GlobalConfig))
    .select_from(InteractionType)
    .join(ConfigRevision, ConfigRevision.id == 1)
    .outerjoin(GlobalConfig, GlobalConfig.interaction_type == InteractionType.name)
    .outerjoin(Provider, Provider.id == GlobalConfig.provider_id)
    .where(InteractionType.name == bindparam("interaction_type"))
)
_RESOLVE_USER = (
    select(*_entry_columns(UserConfig))
    .join(Provider, Provider.id == UserConfig.provider_id)
    .where(UserConfig.user_id == bindparam("user_id"), UserConfig.interaction_type == bindparam("interaction_type"))
)
_FALLBACK_PROVIDERS = select(*_PROVIDER_COLUMNS).where(
    Provider.id.in_(bindparam("provider_ids", expanding=True)), Provider.enabled.is_(True)
)


def _target(provider: Any, model_name: str) -> Target:
    """A Target from anything with the provider's attributes (an ORM row or a Core row)."""
    return Target(
        provider_id=provider.id,
        provider_name=provider.name,
        provider_type=provider.provider_type,
        provider_version=provider.version,
        base_url=provider.api_base_url or adapter_for(provider.provider_type).normalise_base_url(None),
        api_key_ref=provider.api_key_ref,
        model_name=model_name,
    )


class ConfigService:
    """Reads and changes configuration; :meth:`resolve` is what the factory asks on a cache miss."""

    def __init__(self, *, sessions: sessionmaker[Session], providers: ProviderService) -> None:
        self._sessions = sessions
        self._providers = providers

    # -- interaction types -------------------------------------------------------------------------

    def interaction_types(self) -> list[InteractionTypeInfo]:
        with transaction(self._sessions) as session:
            rows = session.scalars(select(InteractionType))
            infos = [InteractionTypeInfo.model_validate(row, from_attributes=True) for row in rows]
        # Built-ins in their documented order, then the operators' own types alphabetically.
        order = list(BUILTIN_DEFAULTS)
        return sorted(infos, key=lambda t: (order.index(t.name) if t.name in order else len(order), t.name))

    def add_interaction_type(self, data: InteractionTypeCreate, *, actor: str = "system") -> InteractionTypeInfo:
        """Add an operator-defined interaction type; it can then be configured like the built-in ones."""
        try:
            with transaction(self._sessions, write=True) as session:
                if session.get(InteractionType, data.name) is not None:
                    raise ConflictError(f"Interaction type {data.name!r} already exists")
                row = InteractionType(name=data.name, kind=data.kind, description=data.description, builtin=False)
                session.add(row)
                session.flush()
                info = InteractionTypeInfo.model_validate(row, from_attributes=True)
                audit.record(
                    session,
                    actor=actor,
                    action="interaction_type.create",
                    target_type="interaction_type",
                    target_id=data.name,
                    after=info,
                )
                bump_revision(session, f"interaction_type:{data.name}")
                return info
        except (IntegrityError, ConcurrentChangeError):
            raise ConflictError(f"Interaction type {data.name!r} already exists") from None

    def delete_interaction_type(self, name: str, *, actor: str = "system") -> None:
        """Delete an operator-defined type; refused for built-ins and while anything configures it."""
        try:
            self._delete_interaction_type(name, actor=actor)
        except ConcurrentChangeError:
            # Configured by a change that committed while we were deleting.
            raise ConflictError(f"{name!r} is still configured; remove its configuration first") from None

    def _delete_interaction_type(self, name: str, *, actor: str) -> None:
        with transaction(self._sessions, write=True) as session:
            row = find_interaction_type(session, name)
            if row.builtin:
                raise ConflictError(f"{name!r} is a built-in interaction type and cannot be deleted")
            users = session.scalars(select(UserConfig.user_id).where(UserConfig.interaction_type == name)).all()
            if session.get(GlobalConfig, name) is not None or users:
                raise ConflictError(
                    f"{name!r} is still configured"
                    + (f" (with overrides for {len(users)} user(s))" if users else "")
                    + "; remove its configuration first"
                )
            audit.record(
                session,
                actor=actor,
                action="interaction_type.delete",
                target_type="interaction_type",
                target_id=name,
                before=InteractionTypeInfo.model_validate(row, from_attributes=True),
            )
            session.delete(row)
            bump_revision(session, f"interaction_type:{name}")

    # -- global configuration ----------------------------------------------------------------------

    def get_global(self) -> dict[str, ConfigEntry]:
        with transaction(self._sessions) as session:
            kinds = dict(session.execute(select(InteractionType.name, InteractionType.kind)).all())
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
            audit.record(
                session,
                actor=actor,
                action="override.delete",
                target_type="override",
                target_id=f"{user_id}/{interaction_type}",
                before=_entry(row, kind, source="user"),
            )
            session.delete(row)
            bump_revision(session, f"override:{user_id}/{interaction_type}")

    def overrides(self, user_id: str) -> dict[str, ConfigEntry]:
        """One user's overrides, keyed by interaction type."""
        check_user_id(user_id)
        with transaction(self._sessions) as session:
            kinds = dict(session.execute(select(InteractionType.name, InteractionType.kind)).all())
            rows = session.scalars(select(UserConfig).where(UserConfig.user_id == user_id))
            return {row.interaction_type: _entry(row, kinds[row.interaction_type], source="user") for row in rows}

    def effective(self, user_id: str) -> dict[str, EffectiveEntry]:
        """For each interaction type, the entry in force for ``user_id``: override, global, or environment."""
        overrides = self.overrides(user_id)
        entries = self.get_global()
        env_available = bool(os.environ.get("OPENAI_API_KEY"))
        result: dict[str, EffectiveEntry] = {}
        for info in self.interaction_types():
            entry = overrides.get(info.name) or entries.get(info.name)
            if entry is not None:
                result[info.name] = EffectiveEntry.model_validate(entry.model_dump())
            elif env_available:
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
        target_type, target_id = _history_target(interaction_type, user_id)
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
        source = "global" if user_id is None else "user"
        try:
            with transaction(self._sessions, write=True) as session:
                kind = find_interaction_type(session, interaction_type).kind
                row: GlobalConfig | UserConfig | None
                if user_id is None:
                    row = session.get(GlobalConfig, interaction_type)
                else:
                    row = self._override_row(session, user_id, interaction_type)
                self._check_version(what, row, update.version)
                before = None if row is None else _entry(row, kind, source=source)
                values = self._checked_values(session, kind, update, current=row)
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
                row.updated_by = actor
                session.flush()
                session.refresh(row)
                after = _entry(row, kind, source=source)
                audit.record(
                    session,
                    actor=actor,
                    action=("config" if user_id is None else "override")
                    + "."
                    + (verb or ("update" if before else "create")),
                    target_type="config" if user_id is None else "override",
                    target_id=interaction_type if user_id is None else f"{user_id}/{interaction_type}",
                    before=before,
                    after=after,
                )
                target_type, target_id = _history_target(interaction_type, user_id)
                bump_revision(session, f"{target_type}:{target_id}")
                return after
        except (StaleDataError, IntegrityError, ConcurrentChangeError):
            # Another writer updated (or created) the same entry between our read and our write.
            raise ConflictError(
                f"{what[0].upper()}{what[1:]} was changed by someone else meanwhile; "
                "reload it and apply your change again"
            ) from None

    @staticmethod
    def _override_row(session: Session, user_id: str, interaction_type: str) -> UserConfig | None:
        return session.scalar(
            select(UserConfig).where(UserConfig.user_id == user_id, UserConfig.interaction_type == interaction_type)
        )

    def summary(self) -> str:
        """One human-readable line per interaction type."""
        entries = self.get_global()
        lines = []
        for info in self.interaction_types():
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

    # -- resolution --------------------------------------------------------------------------------

    def revision(self) -> int:
        with reading(self._sessions) as connection:
            return read_revision(connection)

    def resolve(self, interaction_type: str, user_id: str | None = None) -> tuple[Resolution | None, int]:
        """The configuration in force for a request (user override, then global), and the revision read.

        Returns ``(None, revision)`` when the type exists but nothing is configured for it. This is the
        cold path of ``get_llm``: one statement without a user id, two with one (three with fallbacks),
        prepared at import and run on a plain connection.
        """
        with reading(self._sessions) as connection:
            head = connection.execute(_RESOLVE_GLOBAL, {"interaction_type": interaction_type}).first()
            if head is None:
                with transaction(self._sessions) as session:
                    find_interaction_type(session, interaction_type)  # raises NotFoundError, naming the known types
                    return None, read_revision(session)
            row: Any = None
            source = "user"
            # No override can be stored for an id the database refuses (PostgreSQL rejects NUL): such a
            # user simply follows the global entry, rather than failing the agent's call.
            if user_id is not None and storable_user_id(user_id):
                row = connection.execute(
                    _RESOLVE_USER, {"user_id": user_id, "interaction_type": interaction_type}
                ).first()
            if row is None:
                source = "global"
                row = head if head.model_name is not None else None
            if row is None:
                return None, head.revision
            if not row.enabled:
                raise LLMConfigError(
                    f"{interaction_type!r} uses provider {row.name!r}, which is disabled; "
                    "enable it or configure another provider"
                )
            fallbacks: list[Target] = []
            if row.fallbacks:
                wanted = [f["provider_id"] for f in row.fallbacks]
                providers = {p.id: p for p in connection.execute(_FALLBACK_PROVIDERS, {"provider_ids": wanted})}
                fallbacks = [
                    _target(providers[f["provider_id"]], f["model_name"])
                    for f in row.fallbacks
                    if f["provider_id"] in providers
                ]
            resolution = Resolution(
                interaction_type=interaction_type,
                kind=head.kind,
                source=source,  # type: ignore[arg-type]
                target=_target(row, row.model_name),
                temperature=row.temperature,
                max_tokens=row.max_tokens,
                extra_params_json=freeze_params(row.extra_params or {}),
                fallbacks=tuple(fallbacks),
            )
            return resolution, head.revision

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
    ) -> dict[str, Any]:
        provider = self._usable_provider(session, update.provider_id, kind, update.model_name)
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
                target = self._usable_provider(session, fallback.provider_id, kind, fallback.model_name)
                checked.append(FallbackTarget(provider_id=target.id, model_name=fallback.model_name).model_dump())
            values["fallbacks"] = checked
        return values

    @staticmethod
    def _usable_provider(session: Session, ref: str, kind: str, model_name: str) -> Provider:
        try:
            provider = find_provider(session, ref)
        except NotFoundError:
            raise ValidationError(
                f"Provider {ref!r} does not exist; add it first or pick one from `llmconfig providers list`"
            ) from None
        if not provider.enabled:
            raise ValidationError(f"Provider {provider.name!r} is disabled; enable it or choose another provider")
        if kind == "embeddings" and provider.provider_type == "anthropic":
            raise ValidationError(
                f"Provider {provider.name!r} is an Anthropic provider, which has no embeddings API; "
                "choose an openai or custom provider"
            )
        catalog = dict(
            session.execute(
                select(ProviderModel.model_name, ProviderModel.kind).where(ProviderModel.provider_id == provider.id)
            ).all()
        )
        if catalog:
            if model_name not in catalog:
                suitable = sorted(name for name, model_kind in catalog.items() if model_kind == kind)
                shown = ", ".join(suitable[:10]) + (" …" if len(suitable) > 10 else "")
                raise ValidationError(
                    f"Provider {provider.name!r} does not offer model {model_name!r}; "
                    f"its {kind} models are: {shown or 'none'} (refresh with `llmconfig providers models "
                    f"{provider.name} --refresh`)"
                )
            if catalog[model_name] != kind:
                raise ValidationError(
                    f"{model_name!r} is listed as a model of kind {catalog[model_name]!r}, "
                    f"but this interaction type takes {kind} models"
                )
        return provider


def _history_target(interaction_type: str, user_id: str | None) -> tuple[str, str]:
    if user_id is None:
        return "config", interaction_type
    return "override", f"{user_id}/{interaction_type}"


def _pick(name: str, update: ConfigUpdate, current: GlobalConfig | UserConfig | None, given: set[str]) -> Any:
    if name in given or current is None:
        return getattr(update, name)
    return getattr(current, name)
