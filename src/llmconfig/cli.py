"""The ``llmconfig`` command. Each command is a thin shell over the services; ``--json`` everywhere."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.config.defaults import BUILTIN_DEFAULTS
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.db.engine import create_db_engine, make_sessionmaker
from llmconfig.db.migrate import current_revision, head_revision, upgrade_to_head
from llmconfig.errors import LLMConfigError, NotFoundError
from llmconfig.llm import LLMConfigService
from llmconfig.providers.schemas import ProviderCreate, ProviderPublic, ValidationResult
from llmconfig.settings import Settings, get_settings
from llmconfig.tokens import TokenService

app = typer.Typer(
    name="llmconfig",
    help="Configure which provider, model and parameters each kind of LLM work uses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
providers_app = typer.Typer(help="Add, inspect, validate and remove providers.", no_args_is_help=True)
config_app = typer.Typer(help="Show, check and change the model of each interaction type.", no_args_is_help=True)
app.add_typer(providers_app, name="providers")
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(tokens_app, name="tokens")
keys_app = typer.Typer(help="Rotate the master key; check that every stored key decrypts.", no_args_is_help=True)
secrets_app = typer.Typer(help="Move stored API keys between secret backends.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def main() -> None:
    """Entry point: errors we anticipate end in one line on stderr and exit status 1, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except LLMConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(1)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _migrated_engine(settings: Settings) -> Engine:
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
def _service() -> Iterator[LLMConfigService]:
    settings = get_settings()
    service = LLMConfigService(settings, engine=_migrated_engine(settings))
    try:
        yield service
    finally:
        service.close()


def _emit_json(value: Any) -> None:
    def convert(item: Any) -> Any:
        if isinstance(item, BaseModel):
            return item.model_dump(mode="json")
        if isinstance(item, dict):
            return {key: convert(val) for key, val in item.items()}
        if isinstance(item, list | tuple):
            return [convert(val) for val in item]
        return item

    typer.echo(json.dumps(convert(value), indent=2, sort_keys=True))


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(table)


def _show_provider(provider: ProviderPublic) -> None:
    fields = provider.model_dump(mode="json")
    width = max(len(key) for key in fields)
    for key, value in fields.items():
        out.print(f"{key:<{width}}  {'' if value is None else value}", highlight=False)


def _show_validation(name: str, result: ValidationResult) -> None:
    if result.ok:
        out.print(f"[green]✓[/green] {name}: {result.detail} ({result.latency_ms} ms)", highlight=False)
    else:
        out.print(f"[red]✗[/red] {name}: {result.status}: {result.detail}", highlight=False)


def _read_key(api_key_env: str | None, api_key_stdin: bool) -> SecretStr | None:
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


# -- top level -------------------------------------------------------------------------------------------


@app.command()
def serve() -> None:
    """Migrate the database, then serve the API (and UI) on LLMCONFIG_HOST:LLMCONFIG_PORT."""
    import uvicorn

    from llmconfig.api import create_app

    logging.getLogger().setLevel(logging.INFO)
    settings = get_settings()
    # The database first: when it is unreachable, say so before anything (a new master key file) is created.
    engine = create_db_engine(settings.database_url)
    upgrade_to_head(engine)
    service = LLMConfigService(settings, engine=engine)
    tokens = TokenService(
        sessions=service.sessions,
        env_admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
    )
    if not tokens.has_admin():
        token, _ = tokens.create(role="admin", name="bootstrap-admin", actor="serve")
        # Shown once, on the console only: it is stored hashed and cannot be recovered.
        err.print(
            f"\n[bold]Admin token[/bold] (shown once; store it now): {token}\n"
            "Create more with `llmconfig tokens create --role admin|viewer`.\n",
            highlight=False,
        )
    uvicorn.run(create_app(settings, service=service), host=settings.host, port=settings.port, log_level="info")


@app.command()
def migrate(as_json: JsonFlag = False) -> None:
    """Upgrade the database schema to the latest revision."""
    # The schema only: no secret backend, so no master key file appears as a side effect.
    engine = create_db_engine(get_settings().database_url)
    try:
        before = current_revision(engine)
        upgrade_to_head(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if as_json:
        _emit_json({"from": before, "to": after})
    elif before == after:
        out.print(f"Database schema already at {after}.")
    else:
        out.print(f"Database schema upgraded from {before or 'empty'} to {after}.")


@app.command()
def seed(as_json: JsonFlag = False) -> None:
    """Add the default OpenAI provider from OPENAI_API_KEY / OPENAI_BASE_URL and apply the defaults.

    Idempotent: an existing provider is kept, configured types are left alone.
    """
    report: dict[str, Any] = {"provider": None, "created": False, "validation": None, "configured": [], "kept": []}
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        raise LLMConfigError("OPENAI_API_KEY is not set; export it (and OPENAI_BASE_URL for a compatible server)")
    with _service() as service:
        try:
            provider = service.providers.get("openai")
        except NotFoundError:
            provider, validation = service.providers.add(
                ProviderCreate(
                    name="openai",
                    provider_type="openai",
                    api_base_url=os.environ.get("OPENAI_BASE_URL") or None,
                    api_key=SecretStr(api_key),
                ),
                actor=_actor(),
                validate=False,
            )
            report["created"] = True
        if report["created"] or provider.validation_status != "ok":
            validation = service.providers.validate(provider.id)
            report["validation"] = validation
        configured = service.config.get_global()
        catalog = {entry.model_name for entry in service.providers.catalog(provider.id)}
        for info in service.types.list():
            default = BUILTIN_DEFAULTS.get(info.name)
            if default is None or info.name in configured:
                report["kept"].append(info.name)
                continue
            if catalog and default.model_name not in catalog:
                report["kept"].append(info.name)
                continue
            service.config.set_global(
                info.name,
                ConfigUpdate(provider_id=provider.id, model_name=default.model_name, temperature=default.temperature),
                actor=_actor(),
            )
            report["configured"].append(info.name)
        report["provider"] = service.providers.get(provider.id)
        summary = service.config.summary()
    if as_json:
        _emit_json({**report, "summary": summary})
        return
    out.print(f"Provider openai: {'added' if report['created'] else 'already present'}")
    if report["validation"] is not None:
        _show_validation("openai", report["validation"])
    out.print(f"Configured: {', '.join(report['configured']) or 'nothing new'}")
    out.print(summary, highlight=False)
    out.print("\nNext: `llmconfig config validate`, then `llmconfig serve` for the web panel.")


# -- providers -------------------------------------------------------------------------------------------


@providers_app.command("add")
def providers_add(
    name: str,
    provider_type: Annotated[str, typer.Option("--type", help="openai, anthropic or custom")],
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
            provider_type=provider_type,
            api_base_url=base_url,
            api_key=_read_key(api_key_env, api_key_stdin),
        )
    except Exception as exc:  # pydantic's ValidationError: reword as one line
        raise LLMConfigError(_pydantic_message(exc)) from None
    with _service() as service:
        provider, validation = service.providers.add(data, actor=_actor(), validate=not no_validate)
    if as_json:
        _emit_json({"provider": provider, "validation": validation})
        return
    out.print(f"Added provider {provider.name} ({provider.provider_type}, {provider.api_base_url})", highlight=False)
    if validation is not None:
        _show_validation(provider.name, validation)


@providers_app.command("list")
def providers_list(as_json: JsonFlag = False) -> None:
    """List providers with their validation status."""
    with _service() as service:
        providers = service.providers.list()
    if as_json:
        _emit_json(providers)
        return
    if not providers:
        out.print("No providers yet. Add one: llmconfig providers add NAME --type custom --base-url URL")
        return
    _table(
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


@providers_app.command("show")
def providers_show(name: str, as_json: JsonFlag = False) -> None:
    """Show one provider."""
    with _service() as service:
        provider = service.providers.get(name)
    _emit_json(provider) if as_json else _show_provider(provider)


@providers_app.command("validate")
def providers_validate(name: str, as_json: JsonFlag = False) -> None:
    """Check that a provider answers and accepts its key; refreshes its models. Exit 1 on failure."""
    with _service() as service:
        result = service.providers.validate(name)
    _emit_json(result) if as_json else _show_validation(name, result)
    if not result.ok:
        raise typer.Exit(1)


@providers_app.command("models")
def providers_models(
    name: str,
    refresh: Annotated[bool, typer.Option("--refresh", help="Discover the models again first")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a provider's models (its catalog)."""
    with _service() as service:
        catalog = service.providers.catalog(name, refresh=refresh)
    if as_json:
        _emit_json(catalog)
        return
    if not catalog:
        out.print(f"No models known for {name}; run `llmconfig providers models {name} --refresh`")
        return
    _table(
        f"Models of {name}",
        ["model", "kind", "display name"],
        [(m.model_name, m.kind, m.display_name) for m in catalog],
    )


@providers_app.command("remove")
def providers_remove(name: str, as_json: JsonFlag = False) -> None:
    """Remove a provider (refused while an interaction type uses it)."""
    with _service() as service:
        service.providers.remove(name, actor=_actor())
    _emit_json({"removed": name}) if as_json else out.print(f"Removed provider {name}")


# -- config ----------------------------------------------------------------------------------------------


@config_app.command("show")
def config_show(as_json: JsonFlag = False) -> None:
    """Show the global configuration of every interaction type."""
    with _service() as service:
        entries = service.config.get_global()
        types = service.types.list()
    if as_json:
        _emit_json(entries)
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
    _table(
        "Configuration", ["interaction type", "kind", "provider", "model", "temperature", "max tokens", "changed"], rows
    )


@config_app.command("summary")
def config_summary(as_json: JsonFlag = False) -> None:
    """One line per interaction type."""
    with _service() as service:
        summary = service.config.summary()
    _emit_json({"summary": summary}) if as_json else out.print(summary, highlight=False)


@config_app.command("validate")
def config_validate(as_json: JsonFlag = False) -> None:
    """Check every configured interaction type against its provider. Exit 1 if any fails."""
    with _service() as service:
        validation = service.config.validate()
    if as_json:
        _emit_json(validation)
    else:
        for name, check in validation.results.items():
            mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
            out.print(f"{mark} {name}: {check.detail}" + ("" if check.ok else f" ({check.status})"), highlight=False)
        if not validation.results:
            out.print("Nothing is configured yet.")
    if not validation.ok:
        raise typer.Exit(1)


@config_app.command("set")
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
    except Exception as exc:
        raise LLMConfigError(_pydantic_message(exc)) from None
    with _service() as service:
        entry = service.config.set_global(interaction_type, update, actor=_actor())
    if as_json:
        _emit_json(entry)
    else:
        out.print(
            f"{entry.interaction_type}: {entry.provider_name} / {entry.model_name} (version {entry.version})",
            highlight=False,
        )


@config_app.command("types")
def config_types(as_json: JsonFlag = False) -> None:
    """List the interaction types."""
    with _service() as service:
        types = service.types.list()
    if as_json:
        _emit_json(types)
        return
    _table(
        "Interaction types",
        ["name", "kind", "built-in", "description"],
        [(t.name, t.kind, "yes" if t.builtin else "no", t.description) for t in types],
    )


# -- configuration as code ------------------------------------------------------------------------------


@app.command("export")
def export_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,
) -> None:
    """Write providers (without keys), custom interaction types and the global configuration as YAML."""
    from llmconfig.as_code import export_yaml

    with _service() as service:
        text = export_yaml(service.services)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        err.print(f"Wrote {output}", highlight=False)


@app.command("apply")
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
    with _service() as service:
        plan = apply(service.services, parsed, actor=_actor(), dry_run=dry_run)
    if as_json:
        _emit_json({"dry_run": dry_run, "changes": plan.changes})
        return
    if plan.empty:
        out.print("Nothing to change.")
        return
    for change in plan.changes:
        out.print(f"  {change}", highlight=False)
    out.print("Dry run: nothing was changed." if dry_run else f"Applied {len(plan.changes)} change(s).")


# -- tokens ----------------------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option("--role", help="admin (everything) or viewer (reads only)")],
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the token by")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token. It is printed once and stored only as a hash."""
    if role not in ("admin", "viewer"):
        raise LLMConfigError(f"Unknown role {role!r}; use admin or viewer")
    with _service() as service:
        tokens = TokenService(sessions=service.sessions)
        token, info = tokens.create(role=role, name=name or f"{role}-token", actor=_actor())  # type: ignore[arg-type]
    if as_json:
        _emit_json({"token": token, "info": info})
    else:
        out.print(f"{token}\n\nStore it now: it is not shown again. Revoke with `llmconfig tokens revoke {info.id}`.")


@tokens_app.command("list")
def tokens_list(as_json: JsonFlag = False) -> None:
    """List API tokens (never the tokens themselves)."""
    with _service() as service:
        infos = TokenService(sessions=service.sessions).list()
    if as_json:
        _emit_json(infos)
        return
    _table(
        "API tokens",
        ["id", "name", "role", "starts with", "last used", "revoked"],
        [(t.id, t.name, t.role, t.token_prefix, t.last_used_at, t.revoked_at) for t in infos],
    )


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="Token id, name or prefix")], as_json: JsonFlag = False
) -> None:
    """Revoke an API token; requests with it get 401 from then on."""
    with _service() as service:
        info = TokenService(sessions=service.sessions).revoke(token, actor=_actor())
    _emit_json(info) if as_json else out.print(f"Revoked token {info.name} ({info.id})")


# -- master key and secrets -----------------------------------------------------------------------------


@contextmanager
def _secret_store() -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    """Settings and sessions for the secret maintenance commands; builds no backend (so creates no key file)."""
    settings = get_settings()
    engine = _migrated_engine(settings)
    try:
        yield settings, make_sessionmaker(engine)
    finally:
        engine.dispose()


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

    with _secret_store() as (settings, sessions):
        result = rotate_master_key(sessions, settings, new_key_file=new_key_file, actor=_actor())
    if as_json:
        _emit_json(result)
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
    """Try to decrypt every stored API key; name each provider whose key fails. Exit 1 if any fails."""
    from llmconfig.secrets import build_backend
    from llmconfig.secrets.maintenance import check_secrets

    with _secret_store() as (settings, sessions):
        report = check_secrets(sessions, build_backend(settings, settings.secret_backend, create_key=False))
    if as_json:
        _emit_json(report)
    else:
        for check in report.results:
            mark = {"ok": "[green]✓[/green]", "old_key": "[yellow]![/yellow]"}.get(check.status, "[red]✗[/red]")
            out.print(
                f"{mark} {check.provider_name} ({check.provider_id}, {check.backend}): {check.detail}", highlight=False
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
    to: Annotated[str, typer.Option("--to", help="The backend to move every key into: aws or local")],
    as_json: JsonFlag = False,
) -> None:
    """Move every stored API key into another backend, one provider at a time; running it again changes nothing.

    Keys pass through memory only; each old copy is deleted after its provider points at the new one.
    """
    from llmconfig.secrets import build_backend
    from llmconfig.secrets.maintenance import migrate_secrets

    if to not in ("aws", "local"):
        raise LLMConfigError(f"Unknown secret backend {to!r}; use --to aws or --to local")
    with _secret_store() as (settings, sessions):
        result = migrate_secrets(sessions, build_backend(settings, to), actor=_actor())
    for failure in result.cleanup_failures:
        err.print(f"[yellow]warning:[/yellow] {failure}", highlight=False)
    if as_json:
        _emit_json(result)
        return
    if not result.migrated:
        out.print(f"Nothing to move: every stored API key is already in the {to!r} backend.")
    else:
        out.print(
            f"Moved {len(result.migrated)} API key(s) to the {to!r} backend ({', '.join(result.migrated)}); "
            f"{result.unchanged} already there; deleted {result.deleted_from_source} old copies.",
            highlight=False,
        )
    if settings.secret_backend != to:
        out.print(
            f"Next: set LLMCONFIG_SECRET_BACKEND={to} on every process so new keys are stored there, then run "
            "this command again to move any key written meanwhile.",
            highlight=False,
        )


def _pydantic_message(exc: Exception) -> str:
    errors: Callable[[], list[dict[str, Any]]] | None = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for error in errors():
        field = ".".join(str(part) for part in error.get("loc", ())) or "input"
        parts.append(f"{field}: {error.get('msg', 'invalid')}")
    return "Invalid input: " + "; ".join(parts)


__all__ = ["app", "main"]
