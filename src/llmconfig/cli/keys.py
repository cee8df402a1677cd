"""``llmconfig keys …`` (the master key) and ``llmconfig secrets …`` (moving keys between backends)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmconfig.cli.common import JsonFlag, SecretBackendChoice, actor, emit_json, err, out, secret_store

__all__ = ["keys_app", "secrets_app"]

keys_app = typer.Typer(help="Rotate the master key; check that every stored key decrypts.", no_args_is_help=True)
secrets_app = typer.Typer(help="Move stored API keys between secret backends.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="With LLMCONFIG_MASTER_KEY: file for the new key (created with mode 0600; an existing one is used)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-encrypt every locally stored API key under a new master key, in one transaction.

    The new key is written to disk before the change commits and is never printed.
    """
    from llmconfig.secrets.maintenance import rotate_master_key

    with secret_store() as (settings, sessions):
        result = rotate_master_key(sessions, settings, new_key_file=new_key_file, actor=actor())
    if as_json:
        emit_json(result)
        return
    names = f" ({', '.join(result.providers)})" if result.providers else ""
    out.print(f"Re-encrypted {result.reencrypted} API key(s) under a new master key{names}.", highlight=False)
    if result.completed_interrupted_rotation:
        out.print("Completed an interrupted earlier rotation first.")
    out.print(f"New master key: {result.new_key_file} (mode 0600).", highlight=False)
    for number, step in enumerate(result.next_steps, start=1):
        out.print(f"  {number}. {step}", highlight=False)


@keys_app.command("check")
def keys_check(as_json: JsonFlag = False) -> None:
    """Try to decrypt every stored API key (every key of every provider); name each that fails. Exit 1 if any fails."""
    from llmconfig.secrets import build_backend
    from llmconfig.secrets.maintenance import check_secrets

    with secret_store() as (settings, sessions):
        report = check_secrets(sessions, build_backend(settings, settings.secret_backend, create_key=False))
    if as_json:
        emit_json(report)
    else:
        for check in report.results:
            mark = {"ok": "[green]✓[/green]", "old_key": "[yellow]![/yellow]"}.get(check.status, "[red]✗[/red]")
            key = f"key …{check.key_hint}" if check.key_hint else f"key {check.key_id}"
            out.print(
                f"{mark} {check.provider_name} ({check.provider_id}, {key}, {check.backend}): {check.detail}",
                highlight=False,
            )
        if not report.results:
            out.print("No stored API keys.")
        elif report.failed:
            out.print(f"{report.failed} of {report.checked} stored API key(s) cannot be read.")
        else:
            out.print(f"All {report.checked} stored API key(s) can be read.")
    if not report.ok:
        raise typer.Exit(1)


@secrets_app.command("migrate")
def secrets_migrate(
    to: Annotated[SecretBackendChoice, typer.Option("--to", help="The backend to move every key into")],
    as_json: JsonFlag = False,
) -> None:
    """Move every stored API key into another backend, one key at a time; running it again changes nothing.

    Keys pass through memory only; each old copy is deleted after its provider points at the new one.
    """
    from llmconfig.secrets import build_backend
    from llmconfig.secrets.maintenance import migrate_secrets

    with secret_store() as (settings, sessions):
        result = migrate_secrets(sessions, build_backend(settings, to.value), actor=actor())
    for failure in result.cleanup_failures:
        err.print(f"[yellow]warning:[/yellow] {failure}", highlight=False)
    if as_json:
        emit_json(result)
        return
    if not result.migrated:
        out.print(f"Nothing to move: every stored API key is already in the {to.value!r} backend.")
    else:
        out.print(
            f"Moved {len(result.migrated)} API key(s) to the {to.value!r} backend ({', '.join(result.migrated)}); "
            f"{result.unchanged} already there; deleted {result.deleted_from_source} old copies.",
            highlight=False,
        )
    if settings.secret_backend != to.value:
        out.print(
            f"Next: set LLMCONFIG_SECRET_BACKEND={to.value} on every process so new keys are stored there, then run "
            "this command again to move any key written meanwhile.",
            highlight=False,
        )
