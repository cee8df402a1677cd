"""Providers: add, change, remove, validate and discover, each change in one transaction.

Network calls (validation, discovery) never run inside a database transaction: a provider that takes the
full request timeout to answer must not hold a write lock on SQLite or a row lock on PostgreSQL.
"""

from __future__ import annotations

import builtins
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.db.changes import Change, announce, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import (
    Provider,
    ProviderKey,
    ProviderModel,
    new_id,
    utcnow,
)
from llmconfig.errors import (
    ConcurrentChangeError,
    ConflictError,
    ProviderError,
    SecretBackendError,
    SecretDecryptionError,
    ValidationError,
)
from llmconfig.providers.adapters import adapter_for
from llmconfig.providers.catalog import DiscoveredModel
from llmconfig.providers.clients import ModelClients
from llmconfig.providers.keys import key_hint
from llmconfig.providers.lookup import find_provider, to_public, users_of
from llmconfig.providers.outbound import OutboundPolicy
from llmconfig.providers.schemas import (
    CatalogEntry,
    ProviderCreate,
    ProviderPublic,
    ProviderUpdate,
    ValidationResult,
)
from llmconfig.providers.transport import OutboundClient
from llmconfig.secrets import SecretBackend
from llmconfig.settings import Settings

log = logging.getLogger("llmconfig.providers")

# The audit action of an update that moved a provider to another origin and kept its key on purpose.
KEY_KEPT_ACROSS_ORIGIN = "provider.update.key_kept_across_origin"


@dataclass(frozen=True, slots=True)
class Discovery:
    models: list[DiscoveredModel]
    latency_ms: float

    def result(self) -> ValidationResult:
        """The outcome of the check that discovered these models: it passed."""
        return ValidationResult(
            ok=True,
            status="ok",
            detail=f"{len(self.models)} models available",
            latency_ms=self.latency_ms,
            models_discovered=len(self.models),
        )


class ProviderService:
    """Everything that can be done to providers; the API, the CLI and the factory all go through it."""

    def __init__(self, *, sessions: sessionmaker[Session], secrets: SecretBackend, settings: Settings) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._settings = settings
        # One client for every check: building one (TLS context, pools) costs tens of milliseconds, which
        # would add up when a whole configuration is validated at once. httpx2 clients are thread-safe.
        # Every request it makes passes the outbound guard (see llmconfig.providers.outbound).
        policy = OutboundPolicy(allow=settings.outbound_allow, deny=settings.outbound_deny)
        ssl_context = httpx2.create_ssl_context()
        self._http: httpx2.Client = OutboundClient(
            policy,
            timeout=settings.request_timeout,
            max_response_bytes=settings.outbound_max_response_bytes,
            ssl_context=ssl_context,
        )
        #: The clients of every model object built from these providers: the same guard, plus answer checks.
        self.model_clients = ModelClients(
            policy, max_response_bytes=settings.model_max_response_bytes, ssl_context=ssl_context
        )
        from llmconfig.providers.key_service import ProviderKeyService

        #: A provider's several keys: list, add, remove.
        self.keys = ProviderKeyService(self, sessions=sessions, secrets=secrets)

    def close(self) -> None:
        self._http.close()
        self.model_clients.close()

    # -- reading -----------------------------------------------------------------------------------

    def list(self) -> builtins.list[ProviderPublic]:
        with transaction(self._sessions) as session:
            return [to_public(p) for p in session.scalars(select(Provider).order_by(Provider.name))]

    def get(self, ref: str) -> ProviderPublic:
        with transaction(self._sessions) as session:
            return to_public(find_provider(session, ref))

    def catalog(self, ref: str, *, refresh: bool = False) -> builtins.list[CatalogEntry]:
        """The provider's models; ``refresh`` re-discovers them first (and fails if discovery fails)."""
        if refresh:
            result = self.validate(ref)
            if not result.ok:
                raise ProviderError(
                    f"Cannot refresh the models of {ref!r}: {result.detail}",
                    status=result.status,
                    latency_ms=result.latency_ms,
                )
        with transaction(self._sessions) as session:
            provider = find_provider(session, ref)
            return [
                CatalogEntry(
                    model_name=m.model_name, kind=m.kind, display_name=m.display_name, discovered_at=m.discovered_at
                )
                for m in provider.models
            ]

    def api_key(self, provider: Provider) -> str | None:
        """Decrypt a provider's first key for immediate use; the caller must not keep or log it."""
        reference = provider.keys[0].secret_ref if provider.keys else None
        return self.decrypt_key(reference, provider_id=provider.id, provider_name=provider.name)

    def decrypt_key(self, reference: str | None, *, provider_id: str, provider_name: str) -> str | None:
        """Decrypt a key by its reference; a failure names the provider (never the key)."""
        if reference is None:
            return None
        try:
            return self._secrets.load(reference, owner=provider_id)
        except SecretDecryptionError as exc:
            raise SecretDecryptionError(f"The API key of provider {provider_name!r}: {exc}") from None

    # -- changing ----------------------------------------------------------------------------------

    def add(
        self, data: ProviderCreate, *, actor: str = "system", validate: bool = True
    ) -> tuple[ProviderPublic, ValidationResult | None]:
        """Add a provider. With ``validate``, it is first checked and nothing is written if it fails."""
        adapter = adapter_for(data.provider_type)
        base_url = adapter.normalise_base_url(data.api_base_url)
        api_key = data.api_key.get_secret_value().strip() if data.api_key else None
        with transaction(self._sessions) as session:
            if session.scalar(select(Provider.id).where(Provider.name == data.name)) is not None:
                raise ConflictError(f"A provider named {data.name!r} already exists; choose another name")

        discovery: Discovery | None = None
        if validate:
            discovery = self._discover(data.provider_type, base_url, api_key)  # raises ProviderError

        provider = Provider(
            id=new_id(),
            name=data.name,
            provider_type=data.provider_type,
            api_base_url=base_url,
            enabled=data.enabled,
        )
        session_committed = False
        stored: str | None = None
        try:
            with transaction(self._sessions, write=True) as session:
                if api_key:
                    stored = self.store_key(provider, api_key)
                session.add(provider)
                if discovery is not None:
                    provider.validation_status = "ok"
                    provider.validated_at = utcnow()
                    self._replace_catalog(session, provider.id, discovery.models)
                session.flush()
                record_change(
                    session,
                    Change.provider(provider.id),
                    actor=actor,
                    action="provider.create",
                    after=to_public(provider),
                )
            session_committed = True
        except (IntegrityError, ConcurrentChangeError):
            raise ConflictError(f"A provider named {data.name!r} already exists; choose another name") from None
        finally:
            if not session_committed and stored is not None:
                self.forget_secret(stored, data.name)
        result = discovery.result() if discovery is not None else None
        log.info("provider added: %s (%s, %s)", provider.name, provider.provider_type, base_url)
        return self.get(provider.id), result

    def update(self, ref: str, data: ProviderUpdate, *, actor: str = "system") -> ProviderPublic:
        """Apply a partial update; a stale ``version`` is rejected and nothing changes."""
        changed = data.model_fields_set
        old_secrets: builtins.list[str] = []
        new_secret: str | None = None
        try:
            with transaction(self._sessions, write=True) as session:
                provider = find_provider(session, ref)
                if data.version is not None and data.version != provider.version:
                    raise ConflictError.stale(repr(provider.name), data.version, provider.version)
                before = to_public(provider)
                if "name" in changed and data.name and data.name != provider.name:
                    if session.scalar(select(Provider.id).where(Provider.name == data.name)) is not None:
                        raise ConflictError(f"A provider named {data.name!r} already exists; choose another name")
                    provider.name = data.name
                key_kept_across_origin = False
                if "api_base_url" in changed:
                    adapter = adapter_for(provider.provider_type)
                    new_url = adapter.normalise_base_url(data.api_base_url)
                    old_url = provider.api_base_url or adapter.normalise_base_url(None)
                    if provider.keys and "api_key" not in changed:
                        moved_from, moved_to = origin(old_url), origin(new_url)
                        if moved_from != moved_to and not data.keep_api_key:
                            raise ValidationError(_origin_change_refused(provider.name, moved_from, moved_to))
                        key_kept_across_origin = moved_from != moved_to
                    provider.api_base_url = new_url
                if "enabled" in changed and data.enabled is not None:
                    provider.enabled = data.enabled
                if "api_key" in changed:
                    # The one-key view of the keys: the provider's keys become this one (or none). Every
                    # other key goes too, so that none follows a base URL to an origin it was not meant for.
                    old_secrets = [stored.secret_ref for stored in provider.keys]
                    provider.keys.clear()
                    key = data.api_key.get_secret_value().strip() if data.api_key else ""
                    if key:
                        new_secret = self.store_key(provider, key)
                    provider.updated_at = utcnow()
                if session.is_modified(provider):
                    provider.validation_status = "never"
                    provider.validation_error = None
                    session.flush()
                    record_change(
                        session,
                        Change.provider(provider.id),
                        actor=actor,
                        # The choice to send the stored key to a new origin is the part a reviewer must see.
                        action=KEY_KEPT_ACROSS_ORIGIN if key_kept_across_origin else "provider.update",
                        before=before,
                        after=to_public(provider),
                    )
        except (StaleDataError, ConcurrentChangeError):
            if "name" in changed and data.name and self._name_taken(data.name, ref):
                raise ConflictError(f"A provider named {data.name!r} already exists; choose another name") from None
            raise ConflictError.overtaken(f"Provider {ref!r}") from None
        except Exception:
            if new_secret is not None and new_secret not in old_secrets:
                self.forget_secret(new_secret, ref)
            raise
        for old_secret in old_secrets:
            if old_secret != new_secret:
                self.forget_secret(old_secret, ref)
        return self.get(ref if "name" not in changed or not data.name else data.name)

    def remove(self, ref: str, *, actor: str = "system", version: int | None = None) -> None:
        """Delete a provider; refused while any interaction type (or override, or fallback) uses it."""
        try:
            self._remove(ref, actor=actor, version=version)
        except ConcurrentChangeError:
            # A configuration started using it while we were deleting it.
            users = self._users_of_now(ref)
            raise ConflictError(
                f"Provider {ref!r} is in use by {', '.join(users) or 'a change made at the same moment'}; "
                "point those at another provider first"
            ) from None

    def _name_taken(self, name: str, ref: str) -> bool:
        with transaction(self._sessions) as session:
            owner = session.scalar(select(Provider.id).where(Provider.name == name))
            return owner is not None and owner != ref

    def _users_of_now(self, ref: str) -> builtins.list[str]:
        with transaction(self._sessions) as session:
            return users_of(session, find_provider(session, ref).id)

    def _remove(self, ref: str, *, actor: str, version: int | None) -> None:
        with transaction(self._sessions, write=True) as session:
            provider = find_provider(session, ref)
            if version is not None and version != provider.version:
                raise ConflictError.stale(repr(provider.name), version, provider.version)
            users = users_of(session, provider.id)
            if users:
                raise ConflictError(
                    f"Provider {provider.name!r} is in use by {', '.join(users)}; point those at another provider first"
                )
            secrets = [stored.secret_ref for stored in provider.keys]
            record_change(
                session, Change.provider(provider.id), actor=actor, action="provider.delete", before=to_public(provider)
            )
            session.delete(provider)
        for secret in secrets:
            self.forget_secret(secret, ref)

    def store_key(self, provider: Provider, api_key: str) -> str:
        """Store ``api_key`` in the secret backend as a new key of ``provider``; returns its reference.

        The key joins ``provider.keys`` (written with the caller's transaction); if that does not commit, the
        caller deletes the reference with :meth:`forget_secret`.
        """
        key_id = new_id()
        reference = self._secrets.store(owner=provider.id, value=api_key, slot=key_id)
        provider.keys.append(ProviderKey(id=key_id, secret_ref=reference, hint=key_hint(api_key), created_at=utcnow()))
        return reference

    def forget_secret(self, reference: str, provider: str) -> None:
        """Delete a secret the database no longer points at; a failure is logged, not raised.

        It runs after the change committed (or while an error is already on its way up): the caller's
        operation is done, and an unreachable backend only leaves an orphaned copy behind.
        """
        try:
            self._secrets.delete(reference)
        except SecretBackendError as exc:
            log.warning(
                "The change to provider %r is done, but its old API key could not be deleted from the %s secret "
                "backend (%s); delete the orphaned secret by hand once the backend is back",
                provider,
                reference.split(":", 1)[0],
                exc,
            )

    def validate(self, ref: str) -> ValidationResult:
        """Check connectivity and credentials, refresh the catalog on success, record the outcome."""
        provider_id, result, discovery = self.check(ref)
        if discovery is None:
            self._record_validation(provider_id, status="failed", error=result.detail, models=None)
        else:
            self._record_validation(provider_id, status="ok", error=None, models=discovery.models)
        return result

    def check(self, ref: str) -> tuple[str, ValidationResult, Discovery | None]:
        """Check a provider without recording anything: (its id, the outcome, what it offers if it answered)."""
        with transaction(self._sessions) as session:
            provider = find_provider(session, ref)
            provider_id, provider_type, base_url = provider.id, provider.provider_type, provider.api_base_url
            api_key = self.api_key(provider)
        adapter = adapter_for(provider_type)
        try:
            discovery = self._discover(provider_type, base_url or adapter.normalise_base_url(None), api_key)
        except ProviderError as exc:
            failed = ValidationResult(ok=False, status=exc.status, detail=str(exc), latency_ms=exc.latency_ms)
            return provider_id, failed, None
        return provider_id, discovery.result(), discovery

    # -- internals ---------------------------------------------------------------------------------

    def _discover(self, provider_type: str, base_url: str, api_key: str | None) -> Discovery:
        adapter = adapter_for(provider_type)
        started = time.perf_counter()
        try:
            models = adapter.discover(self._http, base_url=base_url, api_key=api_key)
        except ProviderError as exc:
            exc.latency_ms = round((time.perf_counter() - started) * 1000, 1)
            raise
        return Discovery(models=models, latency_ms=round((time.perf_counter() - started) * 1000, 1))

    def _record_validation(
        self, provider_id: str, *, status: str, error: str | None, models: builtins.list[DiscoveredModel] | None
    ) -> None:
        with transaction(self._sessions, write=True) as session:
            # A Core UPDATE on purpose: validating is not an edit, so it must not bump the row's version and
            # turn someone's open edit into a conflict.
            session.execute(
                update(Provider)
                .where(Provider.id == provider_id)
                # updated_at is kept: it says when the provider was last edited, not last checked.
                .values(
                    validation_status=status,
                    validation_error=error,
                    validated_at=utcnow(),
                    updated_at=Provider.updated_at,
                )
            )
            if models is not None:
                self._replace_catalog(session, provider_id, models)
            # Not an edit (no audit entry, no new version), but what providers are shown with has changed.
            announce(session, Change.provider(provider_id))

    @staticmethod
    def _replace_catalog(session: Session, provider_id: str, models: builtins.list[DiscoveredModel]) -> None:
        session.execute(delete(ProviderModel).where(ProviderModel.provider_id == provider_id))
        seen: set[str] = set()
        now = utcnow()
        for model in models:
            if model.model_name in seen:
                continue
            seen.add(model.model_name)
            session.add(
                ProviderModel(
                    provider_id=provider_id,
                    model_name=model.model_name,
                    kind=model.kind,
                    display_name=model.display_name,
                    discovered_at=now,
                )
            )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, normalised as browsers compare origins: lower case, no default port."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")  # hostname is lower case already
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == _DEFAULT_PORTS.get(scheme) else f"{scheme}://{shown}:{port}"


def _origin_change_refused(name: str, moved_from: str, moved_to: str) -> str:
    return (
        f"The new base URL moves provider {name!r} to another origin ({moved_from} -> {moved_to}), where its stored "
        "API key would then be sent: send the key again with api_key (null removes it), or send "
        '"keep_api_key": true to keep the stored key on purpose'
    )
