"""FastAPI application factory. Routes stay thin: they call the same services as the CLI."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from llmconfig import __version__
from llmconfig.api.errors import install_error_handlers, problem
from llmconfig.api.guards import RejectNulBytes
from llmconfig.api.routers import audit, config, interaction_types, providers, usage, users
from llmconfig.api.throttle import FailedAuthLimiter, TrustedProxies
from llmconfig.db.engine import is_unavailable
from llmconfig.errors import LLMConfigError
from llmconfig.factory import LLMConfigService
from llmconfig.settings import Settings, get_settings
from llmconfig.tokens import TokenService
from llmconfig.ui import install_ui

log = logging.getLogger("llmconfig.api")


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
    )
    app.state.auth_limiter = FailedAuthLimiter()
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    install_error_handlers(app)

    for module in (providers, config, users, interaction_types, audit, usage):
        app.include_router(module.router)
    _install_operations(app, svc)
    install_ui(app)
    app.add_middleware(RejectNulBytes)
    return app


def _install_operations(app: FastAPI, svc: LLMConfigService) -> None:
    """/health, /metrics, and the middleware that feeds the metrics."""
    registry = CollectorRegistry()
    requests = Counter(
        "llmconfig_http_requests", "HTTP requests handled", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "llmconfig_http_request_duration_seconds",
        "Time to answer HTTP requests",
        ["method", "route"],
        registry=registry,
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            # Answered here rather than by an exception handler: Starlette re-raises after those, and the
            # server would then log the full traceback, with whatever values it holds.
            log.error("unexpected %s while handling %s %s", type(exc).__name__, request.method, request.url.path)
            response = problem(500, "Internal error; the server log has the error type")
        # The route template, not the path, so that ids do not explode the number of series.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(request.method, route, str(response.status_code)).inc()
        latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    @app.get("/health", tags=["operations"], responses={503: {"description": "Database or secret backend down"}})
    def health() -> JSONResponse:
        """200 when the database and the secret backend answer; 503 naming what does not. No token needed."""
        problems: dict[str, str] = {}
        try:
            with svc.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            problems["database"] = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        try:
            svc.secrets.check()
        except LLMConfigError as exc:
            problems["secrets"] = str(exc)
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: request counts and latencies per route."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
