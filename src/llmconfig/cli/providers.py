"""``llmconfig providers …``: add, inspect, validate and remove providers."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from llmconfig.cli.common import (
    JsonFlag,
    ProviderTypeChoice,
    actor,
    emit_json,
    out,
    pydantic_message,
    read_key,
    service,
    show_provider,
    show_validation,
    table,
)
from llmconfig.errors import LLMConfigError
from llmconfig.providers.schemas import ProviderCreate

__all__ = ["app"]

app = typer.Typer(help="Add, inspect, validate and remove providers.", no_args_is_help=True)


@app.command("add")
def providers_add(
    name: str,
    provider_type: Annotated[ProviderTypeChoice, typer.Option("--type", help="The provider's wire format")],
    base_url: Annotated[str | None, typer.Option("--base-url", help="API address, e.g. http://host:8000/v1")] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Read the API key from this environment variable")
    ] = None,
    api_key_stdin: Annotated[bool, typer.Option("--api-key-stdin", help="Read the API key from stdin")] = False,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Add without checking the provider")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a provider; it is validated first and nothing is written if that fails."""
    try:
        data = ProviderCreate(
            name=name,
            provider_type=provider_type.value,
            api_base_url=base_url,
            api_key=read_key(api_key_env, api_key_stdin),
        )
    except ValidationError as exc:
        raise LLMConfigError(pydantic_message(exc)) from None
    with service() as svc:
        provider, validation = svc.providers.add(data, actor=actor(), validate=not no_validate)
    if as_json:
        emit_json({"provider": provider, "validation": validation})
        return
    out.print(f"Added provider {provider.name} ({provider.provider_type}, {provider.api_base_url})", highlight=False)
    if validation is not None:
        show_validation(provider.name, validation)


@app.command("list")
def providers_list(as_json: JsonFlag = False) -> None:
    """List providers with their validation status."""
    with service() as svc:
        providers = svc.providers.list()
    if as_json:
        emit_json(providers)
        return
    if not providers:
        out.print("No providers yet. Add one: llmconfig providers add NAME --type custom --base-url URL")
        return
    table(
        "Providers",
        ["name", "type", "base URL", "key", "enabled", "status", "validated at"],
        [
            (
                p.name,
                p.provider_type,
                p.api_base_url,
                f"…{p.api_key_hint}" if p.api_key_hint else ("set" if p.has_api_key else "none"),
                "yes" if p.enabled else "no",
                p.validation_status,
                p.validated_at.isoformat(timespec="seconds") if p.validated_at else "",
            )
            for p in providers
        ],
    )


@app.command("show")
def providers_show(name: str, as_json: JsonFlag = False) -> None:
    """Show one provider."""
    with service() as svc:
        provider = svc.providers.get(name)
    emit_json(provider) if as_json else show_provider(provider)


@app.command("validate")
def providers_validate(name: str, as_json: JsonFlag = False) -> None:
    """Check that a provider answers and accepts its key; refreshes its models. Exit 1 on failure."""
    with service() as svc:
        result = svc.providers.validate(name)
    emit_json(result) if as_json else show_validation(name, result)
    if not result.ok:
        raise typer.Exit(1)


@app.command("models")
def providers_models(
    name: str,
    refresh: Annotated[bool, typer.Option("--refresh", help="Discover the models again first")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a provider's models (its catalog)."""
    with service() as svc:
        catalog = svc.providers.catalog(name, refresh=refresh)
    if as_json:
        emit_json(catalog)
        return
    if not catalog:
        out.print(f"No models known for {name}; run `llmconfig providers models {name} --refresh`")
        return
    table(
        f"Models of {name}",
        ["model", "kind", "display name"],
        [(m.model_name, m.kind, m.display_name) for m in catalog],
    )


@app.command("remove")
def providers_remove(name: str, as_json: JsonFlag = False) -> None:
    """Remove a provider (refused while an interaction type uses it)."""
    with service() as svc:
        svc.providers.remove(name, actor=actor())
    emit_json({"removed": name}) if as_json else out.print(f"Removed provider {name}")
