"""The exceptions llmconfig raises. Every message says what is wrong and what to do about it.

::

    LLMConfigError                      base of everything below; also raised when nothing is configured
    ├── SettingsError                   a setting cannot be used (bad master key, unknown backend …)
    ├── SecretBackendError              the secret backend failed or holds no such secret
    │   └── SecretDecryptionError       a stored secret cannot be decrypted (wrong master key, tampering)
    ├── ConfigUnavailableError          the configuration cannot be read right now
    │   ├── DatabaseUnavailableError    the database cannot be reached
    │   └── ServerUnavailableError      the llmconfig server cannot be reached (client mode)
    ├── ValidationError                 input rejected before anything was written (HTTP 422)
    ├── NotFoundError                   unknown provider, interaction type … (HTTP 404)
    │   └── NotConfiguredError          the interaction type exists, but nothing is configured for it
    ├── BudgetExceededError             a budget with no on_exceed model is spent; the call never left
    ├── ConflictError                   duplicate name, stale version, provider in use (HTTP 409)
    │   └── ConcurrentChangeError       another writer committed a clashing change at the same moment
    └── ProviderError                   a provider answered badly or not at all
        ├── ProviderUnauthorizedError   credentials rejected (401/403)
        ├── ProviderUnreachableError    connection refused, DNS failure …
        ├── ProviderTimeoutError        no answer within LLMCONFIG_REQUEST_TIMEOUT
        ├── ProviderBadResponseError    HTML, invalid JSON, unexpected shape, 5xx, body too large
        └── ProviderBlockedError        the outbound guard refused the address or URL (LLMCONFIG_OUTBOUND_*)

Messages never contain an API key: code that builds them only ever sees provider names, URLs and
hints.
"""

from __future__ import annotations

from typing import TypeVar

_E = TypeVar("_E", bound=BaseException)


class LLMConfigError(Exception):
    """Base class; also raised when an interaction type has no usable configuration."""


class SettingsError(LLMConfigError):
    """A setting has a value that cannot be used."""


class SecretBackendError(LLMConfigError):
    """The secret backend failed or does not hold the requested secret."""


class SecretDecryptionError(SecretBackendError):
    """A stored secret cannot be decrypted with the configured master key."""


class ConfigUnavailableError(LLMConfigError):
    """Where the configuration lives cannot be reached; ``detail`` is the one-line reason.

    Processes that already resolved a model keep serving it (last known good) while this lasts.
    """

    # What is unreachable, for messages such as "the configuration database is unreachable".
    what = "the configuration"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class DatabaseUnavailableError(ConfigUnavailableError):
    """The configuration database cannot be reached; ``detail`` is the driver's one-line reason."""

    what = "the configuration database"


class ServerUnavailableError(ConfigUnavailableError):
    """The llmconfig server (LLMCONFIG_SERVER_URL) cannot be reached, or answered with a server error."""

    what = "the llmconfig server"


class ValidationError(LLMConfigError):
    """Input was rejected; nothing was written."""


class NotFoundError(LLMConfigError):
    """The named provider, interaction type or configuration does not exist."""


class NotConfiguredError(NotFoundError):
    """The interaction type exists, but no entry applies to the request (so the environment fallback may)."""

    # The problem type the REST API answers it with, so that client-mode processes can tell it apart.
    problem_type = "urn:llmconfig:problem:not-configured"


class BudgetExceededError(LLMConfigError):
    """A budget that applies to the call is spent and names no model to use instead; nothing was sent."""

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


class ConflictError(LLMConfigError):
    """The change conflicts with the stored state (duplicate name, stale version, in use)."""

    @classmethod
    def stale(cls, what: str, sent: int, current: int) -> ConflictError:
        """The conflict of a write that sent version ``sent`` of ``what``, which is now at ``current``."""
        return cls(
            f"{what[:1].upper()}{what[1:]} was changed by someone else (you sent version {sent}, it is now at "
            f"{current}); "
            "reload it and apply your change again"
        )

    @classmethod
    def overtaken(cls, what: str, then: str = "reload and retry") -> ConflictError:
        """The conflict of a write another writer overtook between its read and its write; ``then`` says
        what the caller does next."""
        return cls(f"{what[:1].upper()}{what[1:]} was changed by someone else meanwhile; {then}")


class ConcurrentChangeError(ConflictError):
    """A constraint or version clash at commit: someone else changed the same thing at the same moment."""


class ProviderError(LLMConfigError):
    """A provider could not be used; ``status`` is the validation status it maps to, ``latency_ms`` how long
    the failed check took (None when unknown)."""

    status = "bad_response"

    def __init__(self, message: str, *, status: str | None = None, latency_ms: float | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.latency_ms = latency_ms


class ProviderUnauthorizedError(ProviderError):
    status = "unauthorized"


class ProviderUnreachableError(ProviderError):
    status = "unreachable"


class ProviderTimeoutError(ProviderError):
    status = "timeout"


class ProviderBadResponseError(ProviderError):
    status = "bad_response"


class ProviderBlockedError(ProviderError):
    """The outbound guard refused to contact the address (metadata range, deny list, not on the allow list)."""

    status = "blocked"


def cause_of(error: BaseException, kind: type[_E] | tuple[type[_E], ...], *, context: bool = False) -> _E | None:
    """The first exception of ``kind`` in ``error``'s chain: ``error`` itself, then what it was raised from
    (``raise … from``, as the SDKs wrap what their HTTP clients raise), and with ``context`` also what it was
    raised while handling. None when there is none."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = (current.__cause__ or current.__context__) if context else current.__cause__
    return None
