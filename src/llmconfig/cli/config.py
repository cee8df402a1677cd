"""``llmconfig config …``: show, check and change the model of each interaction type."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from llmconfig.cli.common import JsonFlag, actor, emit_json, out, pydantic_message, service, table
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.errors import LLMConfigError

__all__ = ["app"]

app = typer.Typer(help="Show, check and change the model of each interaction type.", no_args_is_help=True)


@app.command("show")
def config_show(as_json: JsonFlag = False) -> None:
    """Show the global configuration of every interaction type."""
    with service() as svc:
        entries = svc.config.get_global()
        types = svc.types.list()
    if as_json:
        emit_json(entries)
        return
    rows: list[tuple[Any, ...]] = []
    for info in types:
        entry = entries.get(info.name)
        if entry is None:
            rows.append((info.name, info.kind, "", "(not configured)", "", "", ""))
        else:
            rows.append(
                (
                    info.name,
                    info.kind,
                    entry.provider_name,
                    entry.model_name,
                    entry.temperature,
                    entry.max_tokens,
                    f"v{entry.version} by {entry.updated_by}",
                )
            )
    table(
        "Configuration", ["interaction type", "kind", "provider", "model", "temperature", "max tokens", "changed"], rows
    )


@app.command("summary")
def config_summary(as_json: JsonFlag = False) -> None:
    """One line per interaction type."""
    with service() as svc:
        summary = svc.config.summary()
    emit_json({"summary": summary}) if as_json else out.print(summary, highlight=False)


@app.command("validate")
def config_validate(as_json: JsonFlag = False) -> None:
    """Check every configured interaction type against its provider. Exit 1 if any fails."""
    with service() as svc:
        validation = svc.config.validate()
    if as_json:
        emit_json(validation)
    else:
        for name, check in validation.results.items():
            mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
            out.print(f"{mark} {name}: {check.detail}" + ("" if check.ok else f" ({check.status})"), highlight=False)
        if not validation.results:
            out.print("Nothing is configured yet.")
    if not validation.ok:
        raise typer.Exit(1)


@app.command("set")
def config_set(
    interaction_type: str,
    provider: Annotated[str, typer.Option("--provider", help="Provider name or id")],
    model: Annotated[str, typer.Option("--model", help="Model name from the provider's catalog")],
    temperature: Annotated[float | None, typer.Option("--temperature", help="0 to 2")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Upper bound on generated tokens")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Choose the provider and model (and parameters) of an interaction type."""
    fields: dict[str, Any] = {"provider_id": provider, "model_name": model}
    if temperature is not None:
        fields["temperature"] = temperature
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    try:
        update = ConfigUpdate(**fields)
    except ValidationError as exc:
        raise LLMConfigError(pydantic_message(exc)) from None
    with service() as svc:
        entry = svc.config.set_global(interaction_type, update, actor=actor())
    if as_json:
        emit_json(entry)
    else:
        out.print(
            f"{entry.interaction_type}: {entry.provider_name} / {entry.model_name} (version {entry.version})",
            highlight=False,
        )


@app.command("types")
def config_types(as_json: JsonFlag = False) -> None:
    """List the interaction types."""
    with service() as svc:
        types = svc.types.list()
    if as_json:
        emit_json(types)
        return
    table(
        "Interaction types",
        ["name", "kind", "built-in", "description"],
        [(t.name, t.kind, "yes" if t.builtin else "no", t.description) for t in types],
    )
