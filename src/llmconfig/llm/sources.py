"""Where resolutions come from: the model cache asks a :class:`ResolutionSource` on every miss.

Today's source reads the database (:class:`DatabaseSource`); the client mode of the library plugs a source
that asks the server into the same cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from llmconfig.config.resolution import Resolution, Target
from llmconfig.db.changes import Announcement
from llmconfig.providers.keys import ApiKey

if TYPE_CHECKING:
    from llmconfig.services import Services


class ResolutionSource(Protocol):
    """What the model cache needs to know about the configuration, wherever it is kept.

    ``resolve`` and ``revision`` raise :class:`~llmconfig.errors.ConfigUnavailableError` when the
    configuration cannot be read right now; the cache then serves what it resolved last.
    """

    def resolve(self, interaction_type: str, user_id: str | None) -> tuple[Resolution | None, int]:
        """The resolution in force (None when nothing is configured for the type) and the revision read."""
        ...

    def revision(self) -> int:
        """A counter that changes whenever anything that is served may have changed; cheap to read."""
        ...

    def api_keys(self, target: Target) -> tuple[ApiKey, ...]:
        """The keys to call ``target`` with, the first one first; the caller must not log them."""
        ...

    def subscribe(self, subscriber: Callable[[Announcement], None]) -> None:
        """Call ``subscriber`` with every change this source learns of."""
        ...

    @property
    def pushed(self) -> bool:
        """Whether every change reaches subscribers by push right now (so no revision check is needed)."""
        ...

    def forget(self) -> None:
        """Drop the resolutions held besides the cache's (client mode: those the last change event carried)."""
        ...


class DatabaseSource:
    """Resolutions read from the database, keys decrypted with this process's secret backend."""

    def __init__(self, services: Services) -> None:
        self._resolver = services.resolver
        self._providers = services.providers
        self._changes = services.changes

    def resolve(self, interaction_type: str, user_id: str | None) -> tuple[Resolution | None, int]:
        return self._resolver.resolve(interaction_type, user_id)

    def revision(self) -> int:
        return self._resolver.revision()

    def api_keys(self, target: Target) -> tuple[ApiKey, ...]:
        keys: list[ApiKey] = []
        for stored in target.api_keys:
            value = self._providers.decrypt_key(
                stored.reference, provider_id=target.provider_id, provider_name=target.provider_name
            )
            if value is not None:
                keys.append(ApiKey(stored.key_id, stored.hint, value))
        return tuple(keys)

    def subscribe(self, subscriber: Callable[[Announcement], None]) -> None:
        self._changes.subscribe(subscriber)

    def forget(self) -> None:
        pass  # every resolution is read from the database

    @property
    def pushed(self) -> bool:
        return self._changes.pushed
