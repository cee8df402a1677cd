"""Configuration as code: export providers, interaction types and configuration as YAML, and apply such a file.

The file never holds a key. Each provider with a key names the environment variable that supplies it
(``api_key_env``); ``apply`` reads the variable, and leaves an existing key alone when it is not set.

``apply`` is declarative for what the file lists: it creates or changes providers, custom interaction
types and global entries until they match, in one transaction, and leaves everything the file does not
mention as it is. Applying the same file twice changes nothing the second time. A file that fails
validation is rejected whole, with the line of each problem.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError

from llmconfig.config.schemas import ConfigEntry, ConfigUpdate, FallbackTarget, InteractionTypeCreate, VariantUpdate
from llmconfig.db.engine import transaction, unit_of_work
from llmconfig.errors import LLMConfigError, NotFoundError, ValidationError
from llmconfig.providers.adapters import adapter_for
from llmconfig.providers.catalog import ModelKind
from llmconfig.providers.lookup import find_provider
from llmconfig.providers.schemas import NAME_PATTERN, ProviderCreate, ProviderPublic, ProviderType, ProviderUpdate
from llmconfig.services import Services
from llmconfig.validation import describe, input_problems

FORMAT_VERSION: Literal[1] = 1


# -- the document ------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: ProviderType
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    enabled: bool = True


class InteractionTypeSpec(_Strict):
    name: str
    kind: ModelKind
    description: str = ""


class FallbackSpec(_Strict):
    provider: str
    model: str


class VariantSpec(_Strict):
    """A variant of an entry; parameters left out (null) are the entry's own."""

    name: str
    provider: str
    model: str
    weight: int = Field(ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    extra_params: dict[str, Any] | None = None
    fallbacks: list[FallbackSpec] | None = None


class ConfigSpec(_Strict):
    provider: str
    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    extra_params: dict[str, Any] = Field(default_factory=dict)
    fallbacks: list[FallbackSpec] = Field(default_factory=list)
    # The share of the entry's own model, and the other variants (see the guide's "Variants").
    weight: int = Field(default=100, ge=1)
    variants: list[VariantSpec] = Field(default_factory=list)


class ConfigDocument(_Strict):
    version: Literal[1] = FORMAT_VERSION
    providers: list[ProviderSpec] = Field(default_factory=list)
    interaction_types: list[InteractionTypeSpec] = Field(default_factory=list)
    config: dict[str, ConfigSpec] = Field(default_factory=dict)


def key_variable(provider_name: str) -> str:
    """The environment variable an exported provider's key is expected in."""
    return "LLMCONFIG_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", provider_name).upper()


# -- export ------------------------------------------------------------------------------------------------


def export_document(services: Services) -> ConfigDocument:
    providers = services.providers.list()
    names = {p.id: p.name for p in providers}
    return ConfigDocument(
        providers=[
            ProviderSpec(
                name=p.name,
                type=p.provider_type,
                base_url=p.api_base_url,
                api_key_env=key_variable(p.name) if p.has_api_key else None,
                enabled=p.enabled,
            )
            for p in providers
        ],
        interaction_types=[
            InteractionTypeSpec(name=t.name, kind=t.kind, description=t.description)
            for t in services.types.list()
            if not t.builtin
        ],
        config={
            name: ConfigSpec(
                provider=names[entry.provider_id],
                model=entry.model_name,
                temperature=entry.temperature,
                max_tokens=entry.max_tokens,
                extra_params=entry.extra_params,
                fallbacks=_fallback_specs(entry.fallbacks, names),
                weight=entry.weight,
                variants=[
                    VariantSpec(
                        name=v.name,
                        provider=names[v.provider_id],
                        model=v.model_name,
                        weight=v.weight,
                        temperature=v.temperature,
                        max_tokens=v.max_tokens,
                        extra_params=v.extra_params,
                        fallbacks=None if v.fallbacks is None else _fallback_specs(v.fallbacks, names),
                    )
                    for v in entry.variants
                ],
            )
            for name, entry in services.config.get_global().items()
        },
    )


def _fallback_specs(fallbacks: list[FallbackTarget], names: dict[str, str]) -> list[FallbackSpec]:
    return [FallbackSpec(provider=names[f.provider_id], model=f.model_name) for f in fallbacks]


def export_yaml(services: Services) -> str:
    document = export_document(services).model_dump(mode="json", exclude_defaults=False)
    header = (
        "# llmconfig configuration. Keys are not in this file: set each api_key_env variable before\n"
        "# `llmconfig apply`.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# -- parsing with line numbers -----------------------------------------------------------------------------


def _node_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)  # a key's own line wins over its value's
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[(*path, key.value)] = key.start_mark.line + 1
            _node_lines(value, (*path, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, (*path, index), lines)


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    # The deepest known prefix: a missing field is reported at the object that lacks it.
    for end in range(len(loc), -1, -1):
        key = tuple(str(part) if isinstance(part, str) else part for part in loc[:end])
        if key in lines:
            return lines[key]
    return 1


@dataclass
class ParsedDocument:
    document: ConfigDocument
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line(self, *path: Any) -> int:
        return _line_of(self.lines, path)


def parse(text: str, *, source: str = "file") -> ParsedDocument:
    """Parse and validate a document; every problem is reported with its line."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        raise ValidationError(f"{source}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _node_lines(node, (), lines)
    try:
        document = ConfigDocument.model_validate(data or {})
    except PydanticValidationError as exc:
        problems = input_problems(exc.errors(), whole="document")
        message = describe(problems, lead=None, where=lambda p: f"{source}: line {_line_of(lines, p.loc)}: ")
        raise ValidationError(message) from None
    return ParsedDocument(document, lines)


# -- plan and apply ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    changes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes


class _DryRun(Exception):
    """Rolls the unit of work back after a dry run has computed its plan."""


def apply(services: Services, parsed: ParsedDocument, *, actor: str, dry_run: bool = False) -> Plan:
    """Make the database match the document, in one transaction; with ``dry_run``, only report the changes."""
    plan = Plan()
    try:
        with unit_of_work(services.sessions):
            _apply(services, parsed, plan, actor=actor)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return plan


def _at(parsed: ParsedDocument, path: tuple[Any, ...], exc: LLMConfigError) -> ValidationError:
    return ValidationError(f"line {parsed.line(*path)}: {exc}")


def _apply(services: Services, parsed: ParsedDocument, plan: Plan, *, actor: str) -> None:
    document = parsed.document
    for index, spec in enumerate(document.providers):
        try:
            _apply_provider(services, spec, plan, actor=actor)
        except LLMConfigError as exc:
            raise _at(parsed, ("providers", index), exc) from None

    existing_types = {t.name: t for t in services.types.list()}
    for index, type_spec in enumerate(document.interaction_types):
        existing = existing_types.get(type_spec.name)
        try:
            if existing is None:
                services.types.add(
                    InteractionTypeCreate(name=type_spec.name, kind=type_spec.kind, description=type_spec.description),
                    actor=actor,
                )
                plan.changes.append(f"create interaction type {type_spec.name} ({type_spec.kind})")
            elif existing.kind != type_spec.kind:
                raise ValidationError(
                    f"interaction type {type_spec.name!r} exists with kind {existing.kind}; its kind cannot change"
                )
        except LLMConfigError as exc:
            raise _at(parsed, ("interaction_types", index), exc) from None
        except PydanticValidationError as exc:
            line = parsed.line("interaction_types", index)
            raise ValidationError(f"line {line}: {describe(input_problems(exc.errors()), lead=None)}") from None

    current_config = services.config.get_global()
    providers = {p.name: p for p in services.providers.list()}
    for type_name, config_spec in document.config.items():
        try:
            provider = providers.get(config_spec.provider)
            if provider is None:
                raise ValidationError(f"provider {config_spec.provider!r} is neither in the file nor in the database")
            update = ConfigUpdate(
                provider_id=provider.id,
                model_name=config_spec.model,
                temperature=config_spec.temperature,
                max_tokens=config_spec.max_tokens,
                extra_params=config_spec.extra_params,
                fallbacks=_fallback_targets(config_spec.fallbacks, providers),
                weight=config_spec.weight,
                variants=[
                    VariantUpdate(
                        name=v.name,
                        provider_id=_provider_named(v.provider, providers, f"variant {v.name!r}").id,
                        model_name=v.model,
                        weight=v.weight,
                        temperature=v.temperature,
                        max_tokens=v.max_tokens,
                        extra_params=v.extra_params,
                        fallbacks=None if v.fallbacks is None else _fallback_targets(v.fallbacks, providers),
                    )
                    for v in config_spec.variants
                ],
            )
            current = current_config.get(type_name)
            if current is not None and _stored_form(update) == _stored_form(current):
                continue
            services.config.set_global(type_name, update, actor=actor)
            verb = "set" if current is None else "change"
            plan.changes.append(f"{verb} {type_name}: {config_spec.provider} / {config_spec.model}")
        except LLMConfigError as exc:
            raise _at(parsed, ("config", type_name), exc) from None
        except PydanticValidationError as exc:
            line = parsed.line("config", type_name)
            raise ValidationError(f"line {line}: {describe(input_problems(exc.errors()), lead=None)}") from None


def _provider_named(name: str, providers: dict[str, ProviderPublic], what: str) -> ProviderPublic:
    provider = providers.get(name)
    if provider is None:
        raise ValidationError(f"the provider {name!r} of {what} is neither in the file nor in the database")
    return provider


def _fallback_targets(fallbacks: list[FallbackSpec], providers: dict[str, ProviderPublic]) -> list[FallbackTarget]:
    return [
        FallbackTarget(provider_id=_provider_named(f.provider, providers, "a fallback").id, model_name=f.model)
        for f in fallbacks
    ]


def _stored_form(entry: ConfigUpdate | ConfigEntry) -> dict[str, Any]:
    """What an entry stores, to tell whether applying ``update`` would change the entry."""
    shown = entry.model_dump(
        include={"provider_id", "model_name", "temperature", "max_tokens", "extra_params", "fallbacks", "weight"},
        mode="json",
    )
    shown["extra_params"] = shown["extra_params"] or {}
    shown["variants"] = [variant.model_dump(exclude={"provider_name"}, mode="json") for variant in entry.variants or []]
    return shown


def _apply_provider(services: Services, spec: ProviderSpec, plan: Plan, *, actor: str) -> None:
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    try:
        current = services.providers.get(spec.name)
    except NotFoundError:
        if spec.api_key_env and not key:
            raise ValidationError(
                f"provider {spec.name!r} needs its key in ${spec.api_key_env}; export it and apply again"
            ) from None
        services.providers.add(
            ProviderCreate(
                name=spec.name,
                provider_type=spec.type,
                api_base_url=spec.base_url,
                api_key=SecretStr(key) if key else None,
                enabled=spec.enabled,
            ),
            actor=actor,
            validate=False,
        )
        plan.changes.append(f"create provider {spec.name} ({spec.type})")
        return
    if current.provider_type != spec.type:
        raise ValidationError(
            f"provider {spec.name!r} exists with type {current.provider_type}; remove it first to change its type"
        )
    changes: dict[str, Any] = {}
    # Compare in stored form: a bare server address is stored with the /v1 it is served under.
    if adapter_for(spec.type).normalise_base_url(spec.base_url) != current.api_base_url:
        changes["api_base_url"] = spec.base_url
    if spec.enabled != current.enabled:
        changes["enabled"] = spec.enabled
    if key and not _same_key(services, spec.name, key):
        changes["api_key"] = SecretStr(key)
    if spec.api_key_env is None and current.has_api_key:
        changes["api_key"] = None
    if changes:
        services.providers.update(spec.name, ProviderUpdate(**changes), actor=actor)
        plan.changes.append(f"change provider {spec.name}: {', '.join(sorted(changes))}")


def _same_key(services: Services, name: str, key: str) -> bool:
    with transaction(services.sessions) as session:
        return services.providers.api_key(find_provider(session, name)) == key
