"""FastAPI application factory. Routes stay thin: they call the same services as the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from llmconfig import __version__
from llmconfig.db.engine import UNAVAILABLE_ERRORS
from llmconfig.errors import LLMConfigError
from llmconfig.factory import LLMConfigService
from llmconfig.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, service: LLMConfigService | None = None) -> FastAPI:
    """Build the app for ``settings``; the caller owns migrations (``llmconfig serve`` runs them first)."""
    settings = settings or get_settings()
    svc = service or LLMConfigService(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if service is None:
            svc.close()

    app = FastAPI(title="llmconfig", version=__version__, lifespan=lifespan)
    app.state.service = svc

    @app.get("/health", tags=["health"])
    def health() -> JSONResponse:
        """200 when the database and the secret backend answer; 503 naming what does not."""
        problems: dict[str, str] = {}
        try:
            with svc.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except UNAVAILABLE_ERRORS as exc:
            problems["database"] = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        try:
            svc.secrets.check()
        except LLMConfigError as exc:
            problems["secrets"] = str(exc)
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    return app
