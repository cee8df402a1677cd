"""The top-level commands: ``serve``, ``migrate`` and ``seed``."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import typer
from pydantic import ValidationError

from llmconfig.cli.common import JsonFlag, actor, emit_json, err, out, pydantic_message, service, show_validation
from llmconfig.db.engine import create_db_engine
from llmconfig.db.migrate import current_revision, upgrade_to_head
from llmconfig.errors import LLMConfigError
from llmconfig.settings import get_settings

__all__ = ["register"]


def serve() -> None:
    """Migrate the database, then serve the API (and UI) on LLMCONFIG_HOST:LLMCONFIG_PORT.

    With LLMCONFIG_WORKERS above 1, that many worker processes share the port.
    """
    import uvicorn

    from llmconfig.api import create_app
    from llmconfig.llm import LLMConfigService

    logging.getLogger().setLevel(logging.INFO)
    settings = get_settings()
    # The database first: when it is unreachable, say so before anything (a new master key file) is created.
    engine = create_db_engine(settings.database_url)
    upgrade_to_head(engine)
    svc = LLMConfigService(settings, engine=engine)
    if not svc.tokens.has_admin():
        token, _ = svc.tokens.create(role="admin", name="bootstrap-admin", actor="serve")
        # Shown once, on the console only: it is stored hashed and cannot be recovered.
        err.print(
            f"\n[bold]Admin token[/bold] (shown once; store it now): {token}\n"
            "Create more with `llmconfig tokens create --role admin|viewer|client`.\n",
            highlight=False,
        )
    options = server_options(settings.host, settings.port)
    err.print(
        f"Serving with {options['loop']} and {options['http']}, {plural(settings.workers, 'worker process')}.",
        highlight=False,
    )
    if settings.workers == 1:
        uvicorn.run(create_app(settings, service=svc), **options)
        return
    # Each worker builds its own services from the environment; the parent only supervises them, and stops
    # them all on SIGTERM or SIGINT.
    svc.close()
    uvicorn.run(WORKER_APP, factory=True, workers=settings.workers, **options)


# What each worker process imports (see llmconfig.api.asgi).
WORKER_APP = "llmconfig.api.asgi:create_worker_app"


def server_options(host: str, port: int) -> dict[str, Any]:
    """How ``llmconfig serve`` runs uvicorn (the benchmark serves its bare comparison app the same way)."""
    loop, http = server_stack()
    return {
        "host": host,
        "port": port,
        "log_level": "info",
        "loop": loop,
        "http": http,
        # The app reads Forwarded / X-Forwarded-For itself, from LLMCONFIG_TRUSTED_PROXIES only; uvicorn's
        # default would trust them from 127.0.0.1 and rewrite the client address before the app sees it.
        "proxy_headers": False,
        # Change streams stay open until their clients leave: give them this long, then end them (their clients
        # reconnect with Last-Event-ID, to another replica or to this one restarted).
        "timeout_graceful_shutdown": 5,
    }


def server_stack() -> tuple[str, str]:
    """The event loop and HTTP parser to serve with: uvloop and httptools (``uvicorn[standard]``) when present.

    Both are dependencies; asyncio and h11 are uvicorn's fallbacks where they cannot be installed.
    """
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}es" if noun.endswith("s") else f"{count} {noun}s"


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
        emit_json({"from": before, "to": after})
    elif before == after:
        out.print(f"Database schema already at {after}.")
    else:
        out.print(f"Database schema upgraded from {before or 'empty'} to {after}.")


def seed(as_json: JsonFlag = False) -> None:
    """Add the default OpenAI provider from OPENAI_API_KEY / OPENAI_BASE_URL and apply the defaults.

    Idempotent: an existing provider is kept, configured types are left alone. Each type that cannot be
    configured is listed with the reason and the `llmconfig config set` command to run.
    """
    from llmconfig.config.seeding import SEED_PROVIDER, seed_defaults

    settings = get_settings()
    if settings.openai_api_key is None:
        raise LLMConfigError("OPENAI_API_KEY is not set; export it (and OPENAI_BASE_URL for a compatible server)")
    with service() as svc:
        try:
            report = seed_defaults(
                providers=svc.providers,
                config=svc.config,
                types=svc.types,
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                actor=actor(),
            )
        except ValidationError as exc:  # OPENAI_BASE_URL that is not a usable URL
            raise LLMConfigError(pydantic_message(exc).replace("api_base_url", "OPENAI_BASE_URL")) from None
        summary = svc.config.summary()
    if as_json:
        emit_json({**report.model_dump(mode="json"), "summary": summary})
        return
    out.print(f"Provider {SEED_PROVIDER}: {'added' if report.created else 'already present'}")
    if report.validation is not None:
        show_validation(SEED_PROVIDER, report.validation)
    out.print(f"Configured: {', '.join(report.configured) or 'nothing new'}")
    if report.kept:
        out.print(f"Kept as configured: {', '.join(report.kept)}")
    for skipped in report.skipped:
        out.print(f"[yellow]Not configured[/yellow] {skipped.interaction_type}: {skipped.detail}", highlight=False)
        out.print(f"  to configure it: {skipped.suggested_command}", highlight=False)
    out.print(summary, highlight=False)
    out.print("\nNext: `llmconfig config validate`, then `llmconfig serve` for the web panel.")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)
    app.command()(seed)
