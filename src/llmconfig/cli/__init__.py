"""The ``llmconfig`` command. Each command is a thin shell over the services; ``--json`` everywhere.

One module per command group: :mod:`.serve` (``serve``, ``migrate``, ``seed``), :mod:`.providers`,
:mod:`.config`, :mod:`.tokens`, :mod:`.keys` (``keys`` and ``secrets``), :mod:`.db` and :mod:`.as_code`
(``export``, ``apply``); :mod:`.common` holds what they share. Heavy libraries (LangChain, Alembic, uvicorn,
boto3) are imported inside the commands that use them, so that ``--help`` and quick commands start fast.
"""

from __future__ import annotations

import logging
import sys

import typer

from llmconfig.cli import as_code, config, db, keys, providers, serve, tokens
from llmconfig.cli.common import err
from llmconfig.errors import LLMConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="llmconfig",
    help="Configure which provider, model and parameters each kind of LLM work uses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve.register(app)
app.add_typer(providers.app, name="providers")
app.add_typer(config.app, name="config")
app.add_typer(tokens.app, name="tokens")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(keys.secrets_app, name="secrets")
app.add_typer(db.app, name="db")
as_code.register(app)


def main() -> None:
    """Entry point: errors we anticipate end in one line on stderr and exit status 1, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except LLMConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(1)
