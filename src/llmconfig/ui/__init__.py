"""The settings panel: static files served by the API process; no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def install_ui(app: FastAPI) -> None:
    """Serve the panel at ``/`` and its assets under ``/ui/``."""
    app.mount("/ui", StaticFiles(directory=STATIC_DIR), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        # No caching of the page itself, so an upgrade is picked up on the next reload.
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
