"""FastAPI application factory. Routes stay thin: they call the same services as the CLI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmconfig import __version__
from llmconfig.api import openai_compat
from llmconfig.api.change_stream import ChangeStream
from llmconfig.api.errors import install_error_handlers
from llmconfig.api.guards import RejectNulBytes
from llmconfig.api.operations import install_operations
from llmconfig.api.routers import (
    agents,
    audit,
    budgets,
    config,
    groups,
    interaction_types,
    provider_keys,
    providers,
    tokens,
    usage,
    users,
)
from llmconfig.api.security import SecurityHeaders
from llmconfig.api.snapshot import SnapshotReads, refresh_ahead
from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.llm import LLMConfigService
from llmconfig.settings import Settings, get_settings
from llmconfig.snapshot import ReadSnapshot
from llmconfig.ui import install_ui


def create_app(settings: Settings | None = None, *, service: LLMConfigService | None = None) -> FastAPI:
    """Build the app for ``settings``; the caller owns migrations (``llmconfig serve`` runs them first)."""
    settings = settings or get_settings()
    svc = service or LLMConfigService(settings)

    stream = ChangeStream(
        svc.services, heartbeat=svc.settings.stream_heartbeat, payloads=svc.payloads, resolved=svc.resolved_json
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await stream.start()
        await openai_compat.startup(_app)
        refresher = asyncio.create_task(refresh_ahead(snapshot, svc.tokens, settings.cache_ttl))
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await openai_compat.shutdown(_app)
            await stream.close()
            if service is None:
                svc.close()

    app = FastAPI(
        title="llmconfig",
        version=__version__,
        description="Providers, models and parameters for each kind of LLM work, changed live.",
        lifespan=lifespan,
        # Requests are counted and timed at /metrics; FastAPI's native OpenTelemetry would ask the global
        # providers on every request whether anyone configured them.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = svc
    app.state.change_stream = stream
    app.state.tokens = svc.tokens
    # Reads answer from it; every change this process learns of drops what it can affect.
    app.state.snapshot = snapshot = ReadSnapshot(svc.services, ttl=settings.cache_ttl)
    svc.services.changes.subscribe(snapshot.apply)
    # Token changes of other replicas drop the token snapshot as soon as they are announced.
    svc.services.changes.subscribe(svc.tokens.apply)
    app.state.auth_limiter = FailedAuthLimiter()
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    install_error_handlers(app)

    modules = (
        providers,
        provider_keys,
        config,
        users,
        groups,
        interaction_types,
        audit,
        usage,
        budgets,
        tokens,
        agents,
    )
    for module in modules:
        app.include_router(module.router)
    openai_compat.install(app, svc)
    # Innermost: the reads it answers pass the metrics, the guards and the security headers like any other.
    app.add_middleware(SnapshotReads, tokens=svc.tokens)
    install_operations(app, svc)
    install_ui(app)
    app.add_middleware(RejectNulBytes)
    # Outermost, so that the guards' refusals carry the headers too.
    docs = (app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    app.add_middleware(SecurityHeaders, docs_paths=[path for path in docs if path])
    return app
