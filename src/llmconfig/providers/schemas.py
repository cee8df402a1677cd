"""The shapes providers take at the boundary: what callers send in and what they get back.

``ProviderPublic`` has no field that could hold a key, so a key cannot leak through it by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from llmconfig.providers.catalog import ModelKind

ProviderType = Literal["openai", "anthropic", "custom"]
ValidationStatus = Literal["never", "ok", "failed"]
CheckStatus = Literal["ok", "unauthorized", "unreachable", "timeout", "bad_response", "blocked"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class ProviderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique name: letters, digits, '.', '_' or '-'")
    provider_type: ProviderType
    api_base_url: str | None = Field(default=None, max_length=2048)
    api_key: SecretStr | None = Field(default=None, max_length=4096)
    enabled: bool = True

    @field_validator("api_key")
    @classmethod
    def _blank_key_means_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return _header_safe(value)


def _header_safe(value: SecretStr | None) -> SecretStr | None:
    """Keys travel in HTTP headers, which carry printable ASCII only."""
    if value is not None and not all(" " < ch <= "~" for ch in value.get_secret_value().strip()):
        raise ValueError("API key must be printable ASCII without spaces; check that it was pasted whole")
    return value


class ProviderUpdate(BaseModel):
    """A partial update: fields left out stay as they are; ``api_key=None`` removes the key.

    Moving ``api_base_url`` to another origin (scheme, host or port) of a provider that has a key needs either
    the key again (``api_key``) or ``keep_api_key=True``: the stored key would otherwise be sent to a server it
    was never meant for.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    api_base_url: str | None = Field(default=None, max_length=2048)
    api_key: SecretStr | None = Field(default=None, max_length=4096)
    keep_api_key: bool = Field(
        default=False,
        description="Keep the stored key although api_base_url moves to another origin (the choice is audited)",
    )
    enabled: bool | None = None
    version: int | None = None

    @field_validator("api_key")
    @classmethod
    def _key_is_header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        return _header_safe(value)

    @model_validator(mode="after")
    def _one_way_for_the_key(self) -> ProviderUpdate:
        if self.keep_api_key and "api_key" in self.model_fields_set:
            raise ValueError("Send either a new api_key or keep_api_key: true, not both")
        return self


class ProviderPublic(BaseModel):
    id: str
    name: str
    provider_type: ProviderType
    api_base_url: str | None
    enabled: bool
    has_api_key: bool
    api_key_hint: str | None
    validation_status: ValidationStatus
    validation_error: str | None
    validated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class ProviderKeyCreate(BaseModel):
    """One more API key for a provider."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(max_length=4096)

    @field_validator("api_key")
    @classmethod
    def _present_and_header_safe(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("API key must not be empty")
        checked = _header_safe(value)
        assert checked is not None
        return checked


class ProviderKeyCreated(BaseModel):
    """An added key: its id (to remove it by) and its hint, never the key."""

    key_id: str
    hint: str | None


class ProviderKeyPublic(BaseModel):
    """One key of a provider as the API shows it; ``resting_until`` is set while this server rests it."""

    key_id: str
    hint: str | None
    resting_until: datetime | None = None


class CatalogEntry(BaseModel):
    model_name: str
    kind: ModelKind
    display_name: str | None = None
    discovered_at: datetime


class ValidationResult(BaseModel):
    ok: bool
    status: CheckStatus
    detail: str
    latency_ms: float | None = None
    models_discovered: int = 0
