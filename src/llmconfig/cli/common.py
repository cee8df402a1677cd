"""What every command group shares: the consoles, JSON output, tables, the service context, the choices.

Only light modules are imported here: every command, even ``--help``, imports this module, so LangChain,
Alembic, uvicorn and boto3 stay behind the commands that need them.
"""

from __future__ import annotations

import enum
import getpass
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel, SecretStr
from pydantic import ValidationError as PydanticValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.engine import create_db_engine, make_sessionmaker
from llmconfig.db.migrate import current_revision, head_revision
from llmconfig.errors import LLMConfigError
from llmconfig.providers.schemas import ProviderPublic, ValidationResult
from llmconfig.settings import Settings, get_settings
from llmconfig.validation import invalid_input

if TYPE_CHECKING:
    from llmconfig.services import Services

__all__ = [
    "JsonFlag",
    "ProviderTypeChoice",
    "RoleChoice",
    "SecretBackendChoice",
    "actor",
    "emit_json",
    "err",
    "migrated_engine",
    "out",
    "pydantic_message",
    "read_key",
    "secret_store",
    "service",
    "show_provider",
    "show_validation",
    "table",
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


# Typer lists an enum's values in --help and refuses any other value with a usage error (exit 2). Each mirrors a
# Literal of the domain (tests/test_cli_choices.py checks that they agree).


class ProviderTypeChoice(enum.StrEnum):
    """``llmconfig.providers.schemas.ProviderType``."""

    openai = "openai"
    anthropic = "anthropic"
    custom = "custom"


class RoleChoice(enum.StrEnum):
    """``llmconfig.tokens.Role``."""

    admin = "admin"
    viewer = "viewer"
    client = "client"


class SecretBackendChoice(enum.StrEnum):
    """``Settings.secret_backend``."""

    local = "local"
    aws = "aws"


def actor() -> str:
    """Who the audit trail names for a change made from this shell."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def migrated_engine(settings: Settings) -> Engine:
    """An engine on a database whose schema is current, or an error telling the user to migrate.

    Checked before any secret backend exists, so that a command refused here leaves nothing behind (no key
    file).
    """
    engine = create_db_engine(settings.database_url)
    try:
        if current_revision(engine) != head_revision():
            raise LLMConfigError("The database schema is missing or out of date; run `llmconfig migrate` first")
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def service() -> Iterator[Services]:
    """The services on the configured database, once its schema is known to be current; closed afterwards."""
    # Imported here: it brings the provider adapters and the HTTP clients, which `--help` does not need.
    from llmconfig.services import Services

    settings = get_settings()
    # A command ends within seconds: it has no cache that other processes' changes could make stale, so it
    # opens no LISTEN connection and starts no listener thread.
    settings = settings.model_copy(update={"listen_for_changes": False})
    services = Services.from_settings(settings, engine=migrated_engine(settings))
    try:
        yield services
    finally:
        services.close()


@contextmanager
def secret_store() -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    """Settings and sessions for the secret maintenance commands; builds no backend (so creates no key file)."""
    settings = get_settings()
    engine = migrated_engine(settings)
    try:
        yield settings, make_sessionmaker(engine)
    finally:
        engine.dispose()


def emit_json(value: Any) -> None:
    """Print ``value`` (pydantic models, dicts and lists of them) as indented JSON with sorted keys."""

    def convert(item: Any) -> Any:
        if isinstance(item, BaseModel):
            return item.model_dump(mode="json")
        if isinstance(item, dict):
            return {key: convert(val) for key, val in item.items()}
        if isinstance(item, list | tuple):
            return [convert(val) for val in item]
        return item

    typer.echo(json.dumps(convert(value), indent=2, sort_keys=True))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table; ``None`` cells are left blank."""
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(grid)


def show_provider(provider: ProviderPublic) -> None:
    fields = provider.model_dump(mode="json")
    width = max(len(key) for key in fields)
    for key, value in fields.items():
        out.print(f"{key:<{width}}  {'' if value is None else value}", highlight=False)


def show_validation(name: str, result: ValidationResult) -> None:
    if result.ok:
        out.print(f"[green]✓[/green] {name}: {result.detail} ({result.latency_ms} ms)", highlight=False)
    else:
        out.print(f"[red]✗[/red] {name}: {result.status}: {result.detail}", highlight=False)


def read_key(api_key_env: str | None, api_key_stdin: bool) -> SecretStr | None:
    """The API key from the named environment variable or from stdin, never from the command line."""
    if api_key_env and api_key_stdin:
        raise typer.BadParameter("use either --api-key-env or --api-key-stdin, not both")
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise LLMConfigError(f"Environment variable {api_key_env} is not set or empty; export the key in it first")
        return SecretStr(value)
    if api_key_stdin:
        return SecretStr(sys.stdin.readline().strip())
    return None


def pydantic_message(exc: PydanticValidationError) -> str:
    """A pydantic ``ValidationError`` as one line naming each field and what is wrong with it."""
    return invalid_input(exc)
