"""``llmconfig db …``: the database as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llmconfig.cli.common import JsonFlag, SecretBackendChoice, emit_json, migrated_engine, out

if TYPE_CHECKING:
    from llmconfig.db_copy import TableCopy
    from llmconfig.secrets.base import SecretBackend

__all__ = ["app"]

app = typer.Typer(help="Copy the whole database to another one.", no_args_is_help=True)


@app.command("copy")
def db_copy(
    to: Annotated[
        str, typer.Option("--to", help="URL of the new, empty database, e.g. postgresql+psycopg://user@host/db")
    ],
    secret_backend: Annotated[
        SecretBackendChoice | None,
        typer.Option(
            "--secret-backend",
            help="Where the target's API keys live; when it is not LLMCONFIG_SECRET_BACKEND, every key is stored "
            "there again  [default: LLMCONFIG_SECRET_BACKEND]",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows read and written at a time")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Copy every table of the configured database (LLMCONFIG_DATABASE_URL) to a new, empty one.

    Providers and their keys, interaction types, global entries, user overrides, history and audit, usage
    and tokens, in one transaction on the target, which is migrated first when it has no schema. Each
    table's row count and checksum are checked on both sides. The configured database is only read.
    """
    from llmconfig.db_copy import copy_database
    from llmconfig.settings import get_settings

    settings = get_settings()
    wanted = secret_backend.value if secret_backend is not None else settings.secret_backend

    def target_secrets() -> SecretBackend:
        from llmconfig.secrets import build_backend

        return build_backend(settings, wanted)

    def progress(table: TableCopy) -> None:
        if not as_json:
            out.print(f"  {table.table:<20} {table.rows:>9,} row(s)  checksum ok", highlight=False)

    engine = migrated_engine(settings)
    try:
        report = copy_database(
            engine,
            to,
            target_secrets=target_secrets if wanted != settings.secret_backend else None,
            batch_size=batch_size,
            progress=progress,
        )
    finally:
        engine.dispose()
    if as_json:
        emit_json(report)
        return
    migrated = f" (it had no schema: migrated it to {report.schema_revision} first)" if report.migrated_target else ""
    out.print(
        f"Copied {report.total_rows:,} row(s) in {len(report.tables)} tables to {report.target}{migrated}; "
        "every table's row count and checksum match.",
        highlight=False,
    )
    if report.secret_backend is not None:
        out.print(f"Stored {report.reencrypted_keys} API key(s) in the {report.secret_backend!r} backend.")
        out.print(f"Next: set LLMCONFIG_SECRET_BACKEND={report.secret_backend} on every process that uses the target.")
    out.print("Next: point LLMCONFIG_DATABASE_URL of every process at the target; the source was not changed.")
