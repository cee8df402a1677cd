"""The protocol every secret backend implements."""

from __future__ import annotations

from typing import Protocol


class SecretBackend(Protocol):
    """Where provider API keys live; the database only ever keeps the *reference* a backend hands out.

    A backend turns a secret value into a reference string (:meth:`store`), turns the reference back into
    the value (:meth:`load`) and forgets it (:meth:`delete`). References carry their backend's name as a
    prefix (``local:…``, ``aws:…``), so a reference written by one backend is recognised — and refused
    with a clear message — by another.

    ``owner`` is a stable id of what the secret belongs to (a provider's UUID as a string). Backends bind
    the secret to it: a reference copied onto another provider does not load.

    Contract, shared by all implementations:

    - Methods are synchronous; the callers are synchronous service code (run them in a worker thread
      from ``async def``).
    - No message, log line or exception produced here contains the secret value or key material.
    - Every failure is a :class:`~llmconfig.errors.SecretBackendError` (or its subclass
      :class:`~llmconfig.errors.SecretDecryptionError`) whose message names the backend and says what to
      check; errors of the underlying libraries never escape.

    Implementations: :class:`~llmconfig.secrets.LocalSecretBackend` (AES-256-GCM, the ciphertext is the
    reference) and :class:`~llmconfig.secrets.AwsSecretBackend` (AWS Secrets Manager or a compatible
    server such as LocalStack). :func:`~llmconfig.secrets.make_secret_backend` picks one from
    :class:`~llmconfig.settings.Settings`.
    """

    name: str
    """The backend's name and reference prefix: ``"local"`` or ``"aws"``."""

    def store(self, *, owner: str, value: str, slot: str | None = None) -> str:
        """Store ``value`` for ``owner`` and return the reference the database keeps.

        ``slot`` tells apart several secrets of one owner (a provider's keys, by key id); None is the owner's
        one secret of old. Storing again for the same owner and slot replaces the value; the returned
        reference is then the one to keep (it may or may not equal the previous one).
        """
        ...

    def load(self, reference: str, *, owner: str) -> str:
        """Return the secret value behind ``reference``, which must have been stored for ``owner``.

        Raises :class:`~llmconfig.errors.SecretDecryptionError` when the value cannot be decrypted (wrong
        master key, tampering, reference of another owner) and
        :class:`~llmconfig.errors.SecretBackendError` for any other failure — never returns garbage.
        """
        ...

    def delete(self, reference: str) -> None:
        """Forget the secret behind ``reference``. Idempotent: an unknown reference is not an error."""
        ...

    def check(self) -> None:
        """Raise :class:`~llmconfig.errors.SecretBackendError` when the backend is unusable (for /health)."""
        ...
