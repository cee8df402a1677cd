"""Secret backends: where provider API keys live. The database keeps only references.

:class:`SecretBackend` is the protocol; :class:`LocalSecretBackend` (AES-256-GCM with the operator's master
key, the default) and :class:`AwsSecretBackend` (AWS Secrets Manager or a compatible server) implement it.
:func:`make_secret_backend` builds the one ``LLMCONFIG_SECRET_BACKEND`` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmconfig.errors import SettingsError
from llmconfig.secrets.base import SecretBackend
from llmconfig.secrets.local import LocalSecretBackend
from llmconfig.settings import Settings

if TYPE_CHECKING:
    from llmconfig.secrets.aws import AwsSecretBackend

__all__ = ["AwsSecretBackend", "LocalSecretBackend", "SecretBackend", "make_secret_backend"]


def __getattr__(name: str) -> Any:
    # botocore is slow to import and only the aws backend needs it.
    if name == "AwsSecretBackend":
        from llmconfig.secrets.aws import AwsSecretBackend

        return AwsSecretBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_secret_backend(settings: Settings) -> SecretBackend:
    """Build the backend selected by ``settings.secret_backend``.

    Raises :class:`~llmconfig.errors.SettingsError` when its settings cannot be used (for example a
    malformed master key). Building does not contact AWS; call ``check()`` for that.
    """
    if settings.secret_backend == "local":
        return LocalSecretBackend.from_settings(settings)
    if settings.secret_backend == "aws":
        from llmconfig.secrets.aws import AwsSecretBackend

        return AwsSecretBackend.from_settings(settings)
    raise SettingsError(  # unreachable through Settings validation; kept for hand-built settings
        f"Unknown secret backend {settings.secret_backend!r}: set LLMCONFIG_SECRET_BACKEND to 'local' or 'aws'."
    )
