"""Shapes of configuration entries at the boundary."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from llmconfig.errors import ValidationError
from llmconfig.providers.catalog import ModelKind

ConfigSource = Literal["user", "global", "env"]

# extra_params is handed to the LangChain constructor. Anything that could carry a credential or redirect
# traffic belongs in the provider (where keys are encrypted), never in plain JSON config.
_FORBIDDEN_PARAM = re.compile(r"key|secret|token|password|auth|header|base_url|api_base|organization|proxy", re.I)
_RESERVED_PARAMS = {"model", "model_name", "temperature", "max_tokens", "timeout", "streaming", "http_client"}


def has_control_characters(text: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in text)


def _single_line(value: str) -> str:
    # Ids and model names end up in SQL parameters, logs and terminals: PostgreSQL refuses NUL outright,
    # and newlines or escape sequences would forge log lines.
    if has_control_characters(value):
        raise ValueError("must not contain control characters (NUL, newlines, tabs, escape sequences)")
    return value


SingleLine = Annotated[str, AfterValidator(_single_line)]

MAX_USER_ID_LENGTH = 255


def storable_user_id(user_id: str) -> bool:
    """Whether an override can exist for ``user_id`` (the column's length, and no control characters)."""
    return 0 < len(user_id) <= MAX_USER_ID_LENGTH and not has_control_characters(user_id)


def check_user_id(user_id: str) -> str:
    """``user_id`` itself, or a ValidationError saying what a user id may be."""
    if not storable_user_id(user_id):
        raise ValidationError(
            f"A user id must be 1 to {MAX_USER_ID_LENGTH} characters without control characters (NUL, newlines …)"
        )
    return user_id


def _non_finite_number(value: Any, path: str = "") -> str | None:
    """The first NaN or infinity, at any depth: JSON has no such numbers and PostgreSQL refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _non_finite_number(item, f"{path}.{name}" if path else str(name))
        if found:
            return found
    return None


def _forbidden_names(value: Any, path: str = "") -> str | None:
    """The first name, at any depth, that could carry a credential or an endpoint (``model_kwargs.api_key``)."""
    if isinstance(value, dict):
        for name, item in value.items():
            dotted = f"{path}.{name}" if path else str(name)
            if _FORBIDDEN_PARAM.search(str(name)):
                return dotted
            found = _forbidden_names(item, dotted)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _forbidden_names(item, f"{path}[{index}]")
            if found:
                return found
    return None


class FallbackTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: SingleLine = Field(min_length=1, max_length=100)
    model_name: SingleLine = Field(min_length=1, max_length=255)


class ConfigUpdate(BaseModel):
    """A change to one interaction type. Fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid")

    provider_id: SingleLine = Field(min_length=1, max_length=100, description="Provider id (or name)")
    model_name: SingleLine = Field(min_length=1, max_length=255)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    extra_params: dict[str, Any] | None = None
    fallbacks: list[FallbackTarget] | None = Field(default=None, max_length=10)
    version: int | None = None

    @field_validator("extra_params")
    @classmethod
    def _no_credentials_in_params(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for name in value or {}:
            if name in _RESERVED_PARAMS:
                raise ValueError(f"extra_params may not set {name!r}: use the field of that name instead")
        forbidden = _forbidden_names(value or {})
        if forbidden:
            raise ValueError(
                f"extra_params may not set {forbidden!r}: credentials and endpoints belong to the provider"
            )
        non_finite = _non_finite_number(value or {})
        if non_finite:
            raise ValueError(f"extra_params.{non_finite} is NaN or infinite, which JSON cannot store; give a number")
        return value


class ConfigEntry(BaseModel):
    interaction_type: str
    kind: ModelKind
    provider_id: str
    provider_name: str
    model_name: str
    temperature: float | None
    max_tokens: int | None
    extra_params: dict[str, Any]
    fallbacks: list[FallbackTarget]
    version: int
    updated_at: datetime
    updated_by: str | None
    source: ConfigSource = "global"


class ConfigVersion(BaseModel):
    """One version of a configuration entry, as it was right after a change."""

    version: int
    at: datetime
    actor: str
    action: str
    entry: ConfigEntry


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version to restore; it comes back as a new version")


class EffectiveEntry(BaseModel):
    """What one interaction type resolves to for a user; ``source`` says where it comes from.

    With ``source="env"`` nothing is configured and ``OPENAI_API_KEY`` supplies an OpenAI default, so there
    is no provider row, version or change time.
    """

    interaction_type: str
    kind: ModelKind
    source: ConfigSource
    provider_id: str | None
    provider_name: str
    model_name: str
    temperature: float | None
    max_tokens: int | None
    extra_params: dict[str, Any]
    fallbacks: list[FallbackTarget]
    version: int | None
    updated_at: datetime | None
    updated_by: str | None


class InteractionTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Lower-case letters, digits, '_' or '-'; starts with a letter"
    )
    kind: ModelKind
    description: str = Field(default="", max_length=500)


class InteractionTypeInfo(BaseModel):
    name: str
    kind: ModelKind
    description: str
    builtin: bool
    version: int


class ConfigCheck(BaseModel):
    ok: bool
    status: str
    detail: str


class ConfigValidation(BaseModel):
    ok: bool
    results: dict[str, ConfigCheck]
