"""The AWS Secrets Manager backend (also LocalStack, moto or any compatible server).

Each provider API key is one secret: ``{LLMCONFIG_AWS_SECRET_PREFIX}keys/{key id}/providers/{owner}`` (a
provider may hold several keys), or ``{LLMCONFIG_AWS_SECRET_PREFIX}providers/{owner}`` for a key stored before
providers had several. Both end in ``providers/{owner}``, which is what binds a secret to its provider. The
database keeps ``"aws:" + name``. Credentials come from the usual AWS chain (environment, profile,
instance role); only region, endpoint and prefix are llmconfig settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from llmconfig.errors import SecretBackendError, SettingsError
from llmconfig.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueResponseTypeDef

    from llmconfig.secrets.base import SecretBackend

__all__ = ["AwsSecretBackend"]

T = TypeVar("T")

REFERENCE_PREFIX: Final = "aws:"
CONNECT_TIMEOUT_SECONDS: Final = 3.0
_NOT_FOUND: Final = "ResourceNotFoundException"
_EXISTS: Final = "ResourceExistsException"
_CREDENTIAL_ERRORS: Final = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


class AwsSecretBackend:
    """Keeps each secret in AWS Secrets Manager; see the module docstring for names and references."""

    name = "aws"

    def __init__(self, client: SecretsManagerClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._foreign: Callable[[str], SecretBackend] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsSecretBackend:
        """Build a Secrets Manager client from the ``LLMCONFIG_AWS_*`` settings with short timeouts."""
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.request_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        try:
            client = boto3.client(
                "secretsmanager",
                region_name=settings.aws_region,
                endpoint_url=settings.aws_endpoint_url,
                config=config,
            )
        except (BotoCoreError, ValueError) as exc:
            raise SettingsError(
                f"Cannot set up the AWS Secrets Manager client (region {settings.aws_region!r}, endpoint "
                f"{settings.aws_endpoint_url or 'AWS default'!r}): {exc}. Check LLMCONFIG_AWS_REGION and "
                "LLMCONFIG_AWS_ENDPOINT_URL."
            ) from None
        return cls(client, settings.aws_secret_prefix)

    def read_foreign_with(self, reader: Callable[[str], SecretBackend] | None) -> None:
        """Load (and delete) references of other backends through ``reader`` instead of refusing them."""
        self._foreign = reader

    def secret_name(self, owner: str, slot: str | None = None) -> str:
        """The Secrets Manager name used for ``owner``'s secret (of ``slot``, when one owns several)."""
        if slot is None:
            return f"{self._prefix}providers/{owner}"
        return f"{self._prefix}keys/{slot}/providers/{owner}"

    def store(self, *, owner: str, value: str, slot: str | None = None) -> str:
        """Create the owner's secret, or put a new value into it when it already exists."""
        name = self.secret_name(owner, slot)

        def create_or_update() -> None:
            try:
                self._client.create_secret(Name=name, SecretString=value)
            except ClientError as exc:
                if _error_code(exc) == _EXISTS:
                    self._client.put_secret_value(SecretId=name, SecretString=value)
                elif _is_scheduled_for_deletion(exc):
                    # A secret deleted with a recovery window blocks its name until restored.
                    self._client.restore_secret(SecretId=name)
                    self._client.put_secret_value(SecretId=name, SecretString=value)
                else:
                    raise

        self._call("store", name, create_or_update, secret=value)
        return REFERENCE_PREFIX + name

    def load(self, reference: str, *, owner: str) -> str:
        """Read the secret value behind ``reference``; it must be ``owner``'s secret."""
        if not reference.startswith(REFERENCE_PREFIX) and self._foreign is not None and ":" in reference:
            return self._foreign(reference).load(reference, owner=owner)
        name = self._name_from_reference(reference, owner=owner)
        if not name.endswith(f"providers/{owner}"):
            raise SecretBackendError(
                f"The secret reference of provider {owner} points at {name!r}, which belongs to another "
                "provider. Enter the API key again."
            )

        def get_value() -> GetSecretValueResponseTypeDef | None:
            try:
                return self._client.get_secret_value(SecretId=name)
            except ClientError as exc:
                if _error_code(exc) == _NOT_FOUND:
                    return None
                raise

        response = self._call("load", name, get_value)
        if response is None:
            raise SecretBackendError(
                f"AWS Secrets Manager {self._where()} has no secret named {name!r} (deleted outside "
                "llmconfig, or another region/endpoint?). Check LLMCONFIG_AWS_REGION and "
                "LLMCONFIG_AWS_ENDPOINT_URL, or enter the API key again."
            )
        value = response.get("SecretString")
        if value is None:
            raise SecretBackendError(
                f"The AWS secret {name!r} holds binary data, not an API key string. Enter the API key again."
            )
        return value

    def delete(self, reference: str) -> None:
        """Delete the secret at once (no recovery window); unknown or foreign references are ignored."""
        if not reference.startswith(REFERENCE_PREFIX):
            # Written by another backend (e.g. before a switch): nothing of it lives in AWS.
            if self._foreign is not None and ":" in reference:
                self._foreign(reference).delete(reference)
            return
        name = reference[len(REFERENCE_PREFIX) :]

        def delete_ignoring_missing() -> None:
            try:
                self._client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            except ClientError as exc:
                if _error_code(exc) != _NOT_FOUND:
                    raise

        self._call("delete", name, delete_ignoring_missing)

    def check(self) -> None:
        """List at most one secret: proves endpoint, credentials and permissions in one cheap call."""
        self._call("list", None, lambda: self._client.list_secrets(MaxResults=1))

    def _name_from_reference(self, reference: str, *, owner: str) -> str:
        if not reference.startswith(REFERENCE_PREFIX):
            backend = reference.split(":", 1)[0] if ":" in reference else "unknown"
            raise SecretBackendError(
                f"The API key of provider {owner} is stored in the {backend!r} secret backend, but "
                f"LLMCONFIG_SECRET_BACKEND is 'aws'. Set LLMCONFIG_SECRET_BACKEND={backend} (with its "
                "settings), or enter the API key again."
            )
        return reference[len(REFERENCE_PREFIX) :]

    def _where(self) -> str:
        endpoint = self._client.meta.endpoint_url
        return f"at {endpoint} (region {self._client.meta.region_name})"

    def _call(self, action: str, name: str | None, operation: Callable[[], T], *, secret: str | None = None) -> T:
        """Run ``operation``, turning every botocore failure into a one-line :class:`SecretBackendError`.

        Messages are built from the action, secret name, endpoint and AWS error code/message only, never
        from request parameters; ``secret`` is masked should a server ever echo it. The botocore exception
        is not chained, so nothing of the request reaches a logged traceback either.
        """
        try:
            return operation()
        except (BotoCoreError, ClientError) as exc:
            message = self._describe_failure(action, name, exc)
        if secret:
            message = message.replace(secret, "***")
        raise SecretBackendError(message)

    def _describe_failure(self, action: str, name: str | None, exc: BotoCoreError | ClientError) -> str:
        target = f"{action} secret {name!r}" if name else f"{action} secrets"
        where = self._where()
        if isinstance(exc, NoCredentialsError):
            return (
                f"Cannot {target} in AWS Secrets Manager {where}: no AWS credentials found. Set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role."
            )
        if isinstance(exc, PartialCredentialsError):
            return (
                f"Cannot {target} in AWS Secrets Manager {where}: the AWS credentials are incomplete. "
                "Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_PROFILE."
            )
        if isinstance(exc, (ConnectionError, HTTPClientError)):
            return (
                f"Cannot reach AWS Secrets Manager {where} to {target} ({exc.__class__.__name__}). "
                "Check that the server is running and reachable, LLMCONFIG_AWS_ENDPOINT_URL and "
                "LLMCONFIG_AWS_REGION."
            )
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code in _CREDENTIAL_ERRORS:
                detail = "the AWS credentials were rejected or lack permission; check them and the IAM policy"
            else:
                detail = _error_message(exc)
            return f"AWS Secrets Manager {where} refused to {target}: {code}: {detail}."
        return (
            f"AWS Secrets Manager {where} failed to {target} ({exc.__class__.__name__}). Check "
            "LLMCONFIG_AWS_ENDPOINT_URL, LLMCONFIG_AWS_REGION and the AWS credentials."
        )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _error_message(exc: ClientError) -> str:
    message = str(exc.response.get("Error", {}).get("Message", "")).strip().rstrip(".")
    return " ".join(message.split()) or "no detail given"


def _is_scheduled_for_deletion(exc: ClientError) -> bool:
    return _error_code(exc) == "InvalidRequestException" and "deletion" in _error_message(exc).lower()
