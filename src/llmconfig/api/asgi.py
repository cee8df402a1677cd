"""Entry points for ASGI servers that import the app by name: worker processes, ``uvicorn --factory``.

``llmconfig serve`` with ``LLMCONFIG_WORKERS`` above 1 has uvicorn start that many worker processes, each
importing :func:`create_worker_app`; the parent has migrated the database and made the first admin token
before any starts. Each worker builds its own services (engine, secret backend, change listener) and read
snapshot from the environment it inherited.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from fastapi import FastAPI

from llmconfig.api.app import create_app
from llmconfig.settings import get_settings

log = logging.getLogger("llmconfig.api")

# How often a worker checks that the process that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def create_app_from_environment() -> FastAPI:
    """The app for the settings of this process's environment (and ``.env``), with services of its own.

    The caller owns migrations (``llmconfig migrate``), as for :func:`~llmconfig.api.create_app`.
    """
    return create_app(get_settings())


def create_worker_app() -> FastAPI:
    """:func:`create_app_from_environment` for a worker of ``llmconfig serve``, which stops with its parent.

    uvicorn's supervisor stops its workers when it is asked to (SIGTERM, SIGINT); one that is killed outright
    cannot, and its workers would go on serving unsupervised. Each worker therefore stops itself, as if
    sent SIGTERM, once the process that started it is gone.
    """
    parent = os.getppid()
    app = create_app_from_environment()
    threading.Thread(target=_stop_when_orphaned, args=(parent,), name="llmconfig-parent-watch", daemon=True).start()
    return app


def _stop_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    log.warning("The serve process %s is gone; worker %s stops", parent, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
