"""A provider's several API keys: list, add and remove them, each change in one transaction.

Every key is stored like the first one: encrypted in the secret backend, bound to the provider, with only its
reference and hint in the database (``provider_keys``). Every change bumps the provider's version and goes
through :func:`~llmconfig.db.changes.record_change` as a change of the provider, so caches and client
processes rebuild what uses it; the keys' rest (see :mod:`llmconfig.providers.keys`) is kept per process.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import utcnow
from llmconfig.errors import ConcurrentChangeError, ConflictError, NotFoundError
from llmconfig.providers.lookup import find_provider, to_public, users_of
from llmconfig.providers.schemas import ProviderKeyCreate, ProviderKeyCreated, ProviderKeyPublic
from llmconfig.secrets import SecretBackend

if TYPE_CHECKING:
    from llmconfig.providers.service import ProviderService

# Provider types whose API always wants a key; a custom (OpenAI-compatible) server may run without one.
KEYED_TYPES = frozenset({"openai", "anthropic"})


class ProviderKeyService:
    """The keys of providers; reached as ``ProviderService.keys``."""

    def __init__(self, providers: ProviderService, *, sessions: sessionmaker[Session], secrets: SecretBackend) -> None:
        self._providers = providers
        self._sessions = sessions
        self._secrets = secrets

    def list(self, ref: str) -> builtins.list[ProviderKeyPublic]:
        """The provider's keys, the first one first, each with its hint and, while it rests here, until when."""
        pools = self._providers.model_clients.key_pools
        with transaction(self._sessions) as session:
            provider = find_provider(session, ref)
            return [
                ProviderKeyPublic(key_id=key.id, hint=key.hint, resting_until=pools.resting_until(provider.id, key.id))
                for key in provider.keys
            ]

    def add(self, ref: str, data: ProviderKeyCreate, *, actor: str = "system") -> ProviderKeyCreated:
        """Add a key to the provider; calls take it in turn with the others from the next one on."""
        value = data.api_key.get_secret_value().strip()
        stored: str | None = None
        committed = False
        try:
            with transaction(self._sessions, write=True) as session:
                provider = find_provider(session, ref)
                before = to_public(provider)
                stored = self._providers.store_key(provider, value)
                added = provider.keys[-1]
                provider.updated_at = utcnow()  # a new version: client processes key their objects by it
                session.flush()
                created = ProviderKeyCreated(key_id=added.id, hint=added.hint)
                record_change(
                    session,
                    Change.provider(provider.id),
                    actor=actor,
                    action="provider.key.add",
                    before=before,
                    after=created,
                )
            committed = True
        except (StaleDataError, ConcurrentChangeError, IntegrityError):
            raise ConflictError.overtaken(f"Provider {ref!r}", "reload and add the key again") from None
        finally:
            if not committed and stored is not None:
                self._providers.forget_secret(stored, ref)
        return created

    def remove(self, ref: str, key_id: str, *, actor: str = "system") -> None:
        """Remove one key; 409 for the last key of a provider that needs one while something uses it."""
        try:
            with transaction(self._sessions, write=True) as session:
                provider = find_provider(session, ref)
                key = next((key for key in provider.keys if key.id == key_id), None)
                if key is None:
                    raise NotFoundError(
                        f"Provider {provider.name!r} has no key {key_id!r}; list its keys with "
                        f"GET /providers/{provider.id}/keys"
                    )
                if len(provider.keys) == 1 and provider.provider_type in KEYED_TYPES:
                    users = users_of(session, provider.id)
                    if users:
                        raise ConflictError(
                            f"This is the last API key of provider {provider.name!r}, which {', '.join(users)} "
                            f"use; a {provider.provider_type} provider cannot be called without one. Add another "
                            "key first, or point those at another provider"
                        )
                removed = ProviderKeyCreated(key_id=key.id, hint=key.hint)
                reference = key.secret_ref
                provider.keys.remove(key)
                provider.updated_at = utcnow()
                session.flush()
                record_change(
                    session,
                    Change.provider(provider.id),
                    actor=actor,
                    action="provider.key.remove",
                    before=removed,
                    after=to_public(provider),
                )
        except (StaleDataError, ConcurrentChangeError):
            raise ConflictError.overtaken(f"Provider {ref!r}", "reload and remove the key again") from None
        self._providers.forget_secret(reference, ref)
