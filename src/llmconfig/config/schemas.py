"""Shapes of configuration entries at the boundary."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from llmconfig.config.variants import MAIN
from llmconfig.errors import ValidationError
from llmconfig.providers.catalog import ModelKind

# Where an entry comes from: "user" (an override), "group:<name>", "global" or "env" (the environment fallback).
ConfigSource = str
SOURCE_PATTERN = r"^(user|global|env|group:[a-z0-9][a-z0-9_.-]{0,63})$"

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

GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
GROUP_NAME_RULE = "1 to 64 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
MAX_GROUPS_PER_USER = 20


def group_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a group name, or None when it is a valid one."""
    if GROUP_NAME.fullmatch(name):
        return None
    shown = repr(name[:70]) + ("…" if len(name) > 70 else "")
    if has_control_characters(name):
        return f"the group name {shown} contains control characters; a group name is {GROUP_NAME_RULE}"
    return f"{shown} is not a group name: a group name is {GROUP_NAME_RULE}"


def check_group_name(name: str) -> str:
    """``name`` itself, or a ValidationError naming it and saying what a group name may be."""
    problem = group_name_problem(name)
    if problem is not None:
        raise ValidationError(problem[0].upper() + problem[1:])
    return name


def _group_name(value: str) -> str:
    problem = group_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


GroupName = Annotated[str, AfterValidator(_group_name)]


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


def _checked_params(value: dict[str, Any] | None) -> dict[str, Any] | None:
    for name in value or {}:
        if name in _RESERVED_PARAMS:
            raise ValueError(f"extra_params may not set {name!r}: use the field of that name instead")
    forbidden = _forbidden_names(value or {})
    if forbidden:
        raise ValueError(f"extra_params may not set {forbidden!r}: credentials and endpoints belong to the provider")
    non_finite = _non_finite_number(value or {})
    if non_finite:
        raise ValueError(f"extra_params.{non_finite} is NaN or infinite, which JSON cannot store; give a number")
    return value


MAX_WEIGHT = 1_000_000
MAX_VARIANTS = 10
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def weight_problem(weight: Any) -> str | None:
    """What is wrong with ``weight`` as a variant's weight (a whole number from 1 to MAX_WEIGHT), or None."""
    if isinstance(weight, bool) or not isinstance(weight, int):
        return f"the weight must be a whole number from 1 to {MAX_WEIGHT:,}, not {type(weight).__name__}"
    if not 1 <= weight <= MAX_WEIGHT:
        return f"the weight must be a whole number from 1 to {MAX_WEIGHT:,}, not {weight}"
    return None


class ModelChoice(BaseModel):
    """What an entry and each of its variants choose alike: a provider and model, and the parameters to call
    it with."""

    model_config = ConfigDict(extra="forbid")

    provider_id: SingleLine = Field(min_length=1, max_length=100, description="Provider id (or name)")
    model_name: SingleLine = Field(min_length=1, max_length=255)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    extra_params: dict[str, Any] | None = None
    fallbacks: list[FallbackTarget] | None = Field(default=None, max_length=10)

    @field_validator("extra_params")
    @classmethod
    def _no_credentials_in_params(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _checked_params(value)


class _VariantName(BaseModel):
    name: str = Field(description="A name of its own; 'main' is the entry's own provider and model")


# pydantic puts the fields of the last base first: a variant's name leads, then what it chooses.
class VariantUpdate(ModelChoice, _VariantName):
    """Another provider and model that takes a share of an entry's traffic, by weight.

    Parameters left out (or null) are the entry's own: temperature, max_tokens, extra_params and fallbacks
    (send ``"fallbacks": []`` for a variant without a fallback chain, ``"extra_params": {}`` for none).
    """

    weight: int = Field(ge=1, le=MAX_WEIGHT, description="Its share of the traffic, relative to the others")

    @model_validator(mode="wrap")
    @classmethod
    def _named(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Every problem of a variant names the variant, so that an operator can tell which one to fix.
        name = data.get("name") if isinstance(data, dict) else None
        shown = repr(name[:70]) if isinstance(name, str) else "without a name"
        if isinstance(name, str) and not VARIANT_NAME.fullmatch(name):
            raise ValueError(
                f"variant {shown}: a variant name is 1 to 64 letters, digits, '-', '_' or '.', starting with a "
                "letter or digit"
            )
        if name == MAIN:
            raise ValueError(
                f"variant {shown}: the name {MAIN!r} is reserved for the entry's own provider and model; choose "
                "another name"
            )
        if isinstance(data, dict) and "weight" in data:
            problem = weight_problem(data["weight"])
            if problem is not None:
                raise ValueError(f"variant {shown}: {problem}")
        try:
            return handler(data)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'value'}: "
                + str(error["msg"]).removeprefix("Value error, ")
                for error in exc.errors()
            )
            raise ValueError(f"variant {shown}: {problems}") from None


class ConfigUpdate(ModelChoice):
    """A change to one interaction type. Fields left out keep their current value."""

    weight: int = Field(
        default=100, ge=1, le=MAX_WEIGHT, description=f"The share of the entry's own model (variant {MAIN!r})"
    )
    variants: list[VariantUpdate] | None = Field(default=None, max_length=MAX_VARIANTS)
    version: int | None = None

    @field_validator("weight", mode="before")
    @classmethod
    def _whole_weight(cls, value: Any) -> Any:
        problem = weight_problem(value)
        if problem is not None:
            raise ValueError(f"variant {MAIN!r} (the entry's own model): {problem}")
        return value

    @field_validator("variants")
    @classmethod
    def _distinct_names(cls, value: list[VariantUpdate] | None) -> list[VariantUpdate] | None:
        seen: set[str] = set()
        for variant in value or []:
            if variant.name in seen:
                raise ValueError(f"variant {variant.name!r} is listed twice; give each variant a name of its own")
            seen.add(variant.name)
        return value


class Variant(BaseModel):
    """A variant of an entry as stored; null parameters are the entry's own."""

    name: str
    provider_id: str
    provider_name: str
    model_name: str
    temperature: float | None = None
    max_tokens: int | None = None
    extra_params: dict[str, Any] | None = None
    fallbacks: list[FallbackTarget] | None = None
    weight: int


class _Weighted(BaseModel):
    weight: int = 100
    variants: list[Variant] = []

    @property
    def variant_weights(self) -> list[tuple[str, int]]:
        """``(name, weight)`` of each variant in layout order, ``main`` (the entry's own model) first."""
        return [(MAIN, self.weight), *((variant.name, variant.weight) for variant in self.variants)]


class ConfigEntry(_Weighted):
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
    source: ConfigSource = Field(default="global", pattern=SOURCE_PATTERN)


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


class EffectiveEntry(_Weighted):
    """What one interaction type resolves to for a user; ``source`` says where it comes from (``user``,
    ``group:<name>``, ``global`` or ``env``) and ``variant`` which of the entry's variants the user gets.

    With ``source="env"`` nothing is configured and ``OPENAI_API_KEY`` supplies an OpenAI default, so there
    is no provider row, version or change time.
    """

    interaction_type: str
    kind: ModelKind
    source: ConfigSource = Field(pattern=SOURCE_PATTERN)
    variant: str | None = None
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


class GroupMembershipUpdate(BaseModel):
    """A user's groups, in order: the first one with an entry for an interaction type wins."""

    model_config = ConfigDict(extra="forbid")

    groups: list[GroupName] = Field(max_length=MAX_GROUPS_PER_USER)

    @field_validator("groups")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"group {name!r} is listed twice; list each group once, in the order they apply")
            seen.add(name)
        return value


class GroupMembership(BaseModel):
    user_id: str
    groups: list[str]


class GroupInfo(BaseModel):
    """A group: its members (user ids, sorted) and the interaction types it has entries for."""

    name: str
    members: list[str]
    interaction_types: list[str]
    created_at: datetime
