"""What operators and their tools see: /health, /metrics, and the middleware that feeds the metrics."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmconfig import __version__
from llmconfig.api.errors import problem
from llmconfig.db.engine import is_unavailable
from llmconfig.errors import LLMConfigError
from llmconfig.llm import LLMConfigService

log = logging.getLogger("llmconfig.api")


class RequestMetrics:
    """Counts and times every HTTP request by method, route template and status; answers unexpected errors.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs each request
    through an extra task and memory stream, which costs a good share of the throughput of small answers.
    """

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency
        # The labelled series, looked up once: ``labels()`` validates and locks on every call. Bounded by
        # methods × route templates × statuses.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered = False

        async def send_and_note(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception as exc:
            # Answered here rather than left to the server: it would log the full traceback, with whatever
            # values the frames hold (a key being stored, a token being checked).
            log.error("unexpected %s while handling %s %s", type(exc).__name__, scope["method"], scope["path"])
            if not answered:
                await problem(500, "Internal error; the server log has the error type")(scope, receive, send_and_note)
        finally:
            # The route template, not the path, so that ids do not explode the number of series.
            route = getattr(scope.get("route"), "path", "unmatched")
            series = self._series.get((scope["method"], route, status))
            if series is None:
                series = self._series[(scope["method"], route, status)] = (
                    self.requests.labels(scope["method"], route, str(status)),
                    self.latency.labels(scope["method"], route),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


class DroppedUsage(Collector):
    """``llmconfig_usage_events_dropped_total``: the usage events this process dropped because its queue of
    events waiting to be written was full (``LLMCONFIG_USAGE_QUEUE_SIZE``), read at each scrape."""

    def __init__(self, svc: LLMConfigService) -> None:
        self._svc = svc

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "llmconfig_usage_events_dropped",
            "Usage events dropped because the queue of events waiting to be written was full",
            value=self._svc.usage_recorder.dropped,
        )


def install_operations(app: FastAPI, svc: LLMConfigService) -> None:
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
    registry.register(DroppedUsage(svc))
    app.add_middleware(RequestMetrics, requests=requests, latency=latency)

    @app.get("/health", tags=["operations"], responses={503: {"description": "Database or secret backend down"}})
    def health() -> JSONResponse:
        """200 when the database and the secret backend answer, with the answering process's pid; 503 naming what
        does not. No token needed."""
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
        # The pid says which worker process answered (LLMCONFIG_WORKERS): what an operator needs to tell them apart.
        return JSONResponse({"status": "ok", "version": __version__, "pid": os.getpid()})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: request counts and latencies per route, usage events dropped."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
