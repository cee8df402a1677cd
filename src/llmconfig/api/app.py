"""FastAPI application factory. Routes stay thin: they call the same services as the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmconfig import __version__
from llmconfig.api.change_stream import ChangeStream
from llmconfig.api.errors import install_error_handlers
from llmconfig.api.guards import RejectNulBytes
from llmconfig.api.operations import install_operations
from llmconfig.api.routers import (
    agents,
    audit,
    config,
    interaction_types,
    provider_keys,
    providers,
    tokens,
    usage,
    users,
)
from llmconfig.api.security import SecurityHeaders
from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.llm import LLMConfigService
from llmconfig.settings import Settings, get_settings
from llmconfig.ui import install_ui


def create_app(settings: Settings | None = None, *, service: LLMConfigService | None = None) -> FastAPI:
    """Build the app for ``settings``; the caller owns migrations (``llmconfig serve`` runs them first)."""
    settings = settings or get_settings()
    svc = service or LLMConfigService(settings)

    stream = ChangeStream(svc.services, heartbeat=svc.settings.stream_heartbeat)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await stream.start()
        yield
        await stream.close()
        if service is None:
            svc.close()

    app = FastAPI(
        title="llmconfig",
        version=__version__,
        description="Providers, models and parameters for each kind of LLM work, changed live.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.change_stream = stream
    app.state.tokens = svc.tokens
    # Token changes of other replicas drop the token snapshot as soon as they are announced.
    svc.services.changes.subscribe(svc.tokens.apply)
    app.state.auth_limiter = FailedAuthLimiter()
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    install_error_handlers(app)

    for module in (providers, provider_keys, config, users, interaction_types, audit, usage, tokens, agents):
        app.include_router(module.router)
    install_operations(app, svc)
    install_ui(app)
    app.add_middleware(RejectNulBytes)
    # Outermost, so that the guards' refusals carry the headers too.
    docs = (app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    app.add_middleware(SecurityHeaders, docs_paths=[path for path in docs if path])
    return app
