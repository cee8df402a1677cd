"""Secret backends: where provider API keys live. The database keeps only references.

:class:`SecretBackend` is the protocol; :class:`LocalSecretBackend` (AES-256-GCM with the operator's master
key, the default) and :class:`AwsSecretBackend` (AWS Secrets Manager or a compatible server) implement it.
:func:`make_secret_backend` builds the one ``LLMCONFIG_SECRET_BACKEND`` names.

That backend *stores* every new secret. *Loading* dispatches on the reference prefix: a ``local:`` or
``aws:`` reference written by the other backend (before or during ``llmconfig secrets migrate``) is read
through that backend, built on first need from the same settings — local only with a master key that
already exists (``LLMCONFIG_MASTER_KEY`` or an existing key file; none is created just to read), aws from
the ``LLMCONFIG_AWS_*`` settings. So every process keeps reading every provider's key while secrets move.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from llmconfig.errors import SecretBackendError, SettingsError
from llmconfig.secrets.base import SecretBackend
from llmconfig.secrets.local import LocalSecretBackend
from llmconfig.settings import Settings

if TYPE_CHECKING:
    from llmconfig.secrets.aws import AwsSecretBackend

__all__ = ["AwsSecretBackend", "LocalSecretBackend", "SecretBackend", "build_backend", "make_secret_backend"]

BACKEND_NAMES = ("local", "aws")


def __getattr__(name: str) -> Any:
    # botocore is slow to import and only the aws backend needs it.
    if name == "AwsSecretBackend":
        from llmconfig.secrets.aws import AwsSecretBackend

        return AwsSecretBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_secret_backend(settings: Settings) -> SecretBackend:
    """Build the backend selected by ``settings.secret_backend``, reading the other backend's references too.

    Raises :class:`~llmconfig.errors.SettingsError` when its settings cannot be used (for example a
    malformed master key). Building does not contact AWS; call ``check()`` for that.
    """
    return build_backend(settings, settings.secret_backend)


def build_backend(settings: Settings, name: str, *, create_key: bool = True) -> LocalSecretBackend | AwsSecretBackend:
    """The backend ``name`` (``local`` or ``aws``) from ``settings``, loading foreign references by prefix.

    ``create_key=False``: the local backend never creates a key file (raises SettingsError without a key).
    """
    backend: LocalSecretBackend | AwsSecretBackend
    if name == "local":
        backend = LocalSecretBackend.from_settings(settings, create=create_key)
    elif name == "aws":
        from llmconfig.secrets.aws import AwsSecretBackend

        backend = AwsSecretBackend.from_settings(settings)
    else:  # unreachable through Settings validation; kept for hand-built settings
        raise SettingsError(f"Unknown secret backend {name!r}: set LLMCONFIG_SECRET_BACKEND to 'local' or 'aws'.")
    backend.read_foreign_with(_ForeignReaders(settings, primary=name))
    return backend


class _ForeignReaders:
    """Builds, on first need, the backend that reads a reference written by another backend."""

    def __init__(self, settings: Settings, *, primary: str) -> None:
        self._settings = settings
        self._primary = primary
        self._built: dict[str, SecretBackend] = {}
        self._lock = threading.Lock()

    def __call__(self, reference: str) -> SecretBackend:
        kind = reference.split(":", 1)[0]
        if kind not in BACKEND_NAMES or kind == self._primary:
            return _Unreadable(kind, self._primary)
        with self._lock:
            backend = self._built.get(kind)
            if backend is None:
                try:
                    if kind == "local":
                        backend = LocalSecretBackend.from_settings(self._settings, create=False)
                    else:
                        from llmconfig.secrets.aws import AwsSecretBackend

                        backend = AwsSecretBackend.from_settings(self._settings)
                except SettingsError as exc:
                    return _Unreadable(kind, self._primary, reason=str(exc))
                self._built[kind] = backend
            return backend


class _Unreadable:
    """Stands in for a backend that cannot be built here: loading fails clearly, deleting does nothing."""

    def __init__(self, kind: str, primary: str, *, reason: str | None = None) -> None:
        self.name = kind
        self._primary = primary
        self._reason = reason

    def store(self, *, owner: str, value: str, slot: str | None = None) -> str:
        raise SecretBackendError(f"Cannot store secrets in the {self.name!r} secret backend from here.")

    def load(self, reference: str, *, owner: str) -> str:
        if self._reason is not None:
            raise SecretBackendError(
                f"The API key of provider {owner} is stored in the {self.name!r} secret backend, which cannot "
                f"be read here: {self._reason}"
            )
        raise SecretBackendError(
            f"The API key of provider {owner} is stored in the {self.name!r} secret backend, which this version "
            f"of llmconfig does not know (LLMCONFIG_SECRET_BACKEND is {self._primary!r}). Upgrade llmconfig, or "
            "enter the API key again."
        )

    def delete(self, reference: str) -> None:
        """Nothing can be deleted from a backend that cannot be reached from here."""

    def check(self) -> None:
        raise SecretBackendError(f"The {self.name!r} secret backend cannot be used here.")
