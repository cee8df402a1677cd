"""FastAPI application factory. Routes stay thin: they call the same services as the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmconfig import __version__
from llmconfig.api.errors import install_error_handlers
from llmconfig.api.guards import RejectNulBytes
from llmconfig.api.operations import install_operations
from llmconfig.api.routers import audit, config, interaction_types, providers, tokens, usage, users
from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.factory import LLMConfigService
from llmconfig.settings import Settings, get_settings
from llmconfig.tokens import TokenService
from llmconfig.ui import install_ui


def create_app(settings: Settings | None = None, *, service: LLMConfigService | None = None) -> FastAPI:
    """Build the app for ``settings``; the caller owns migrations (``llmconfig serve`` runs them first)."""
    settings = settings or get_settings()
    svc = service or LLMConfigService(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if service is None:
            svc.close()

    app = FastAPI(
        title="llmconfig",
        version=__version__,
        description="Providers, models and parameters for each kind of LLM work, changed live.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.tokens = TokenService(
        sessions=svc.sessions,
        env_admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
        # Tokens changed by another process (the CLI, another replica) are seen within this time.
        ttl=settings.cache_ttl,
    )
    app.state.auth_limiter = FailedAuthLimiter()
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    install_error_handlers(app)

    for module in (providers, config, users, interaction_types, audit, usage, tokens):
        app.include_router(module.router)
    install_operations(app, svc)
    install_ui(app)
    app.add_middleware(RejectNulBytes)
    return app
