"""``llmconfig export`` and ``llmconfig apply``: the configuration as a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmconfig.cli.common import JsonFlag, actor, emit_json, err, out, service
from llmconfig.errors import LLMConfigError

__all__ = ["register"]


def export_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,
) -> None:
    """Write providers (without keys), custom interaction types and the global configuration as YAML."""
    from llmconfig.as_code import export_yaml

    with service() as svc:
        text = export_yaml(svc)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        err.print(f"Wrote {output}", highlight=False)


def apply_command(
    file: Annotated[Path, typer.Argument(help="A YAML file as written by `llmconfig export`")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make the configuration match FILE, in one transaction. Applying the same file twice changes nothing."""
    from llmconfig.as_code import apply, parse

    try:
        text = file.read_text()
    except OSError as exc:
        raise LLMConfigError(f"Cannot read {file}: {exc.strerror}") from None
    parsed = parse(text, source=str(file))
    with service() as svc:
        plan = apply(svc, parsed, actor=actor(), dry_run=dry_run)
    if as_json:
        emit_json({"dry_run": dry_run, "changes": plan.changes})
        return
    if plan.empty:
        out.print("Nothing to change.")
        return
    for change in plan.changes:
        out.print(f"  {change}", highlight=False)
    out.print("Dry run: nothing was changed." if dry_run else f"Applied {len(plan.changes)} change(s).")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("apply")(apply_command)
