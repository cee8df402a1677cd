"""The metrics middleware: plain ASGI, counts by route template, and answers an unexpected error itself.

SQLite only: nothing here depends on the database.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware.base import BaseHTTPMiddleware

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.db.models import utcnow
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from llmconfig.usage.recorder import UsageEvent
from tests.api.conftest import API, problem_of, sample

SECRET_IN_FRAME = "sk-canary-in-a-frame-3e1d9c7b5a"


@pytest.fixture
def app_and_admin(
    sqlite_template: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    target = tmp_path / "ops.db"
    target.write_bytes(sqlite_template.read_bytes())
    service = LLMConfigService(settings_factory(database_url=f"sqlite:///{target}", cache_ttl=0))
    token, _ = TokenService(sessions=service.sessions).create(role="admin", name="ops")
    try:
        yield create_app(service.settings, service=service), {"Authorization": f"Bearer {token}"}
    finally:
        service.close()


def test_no_middleware_of_the_app_is_a_base_http_middleware(app_and_admin: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = app_and_admin
    assert app.user_middleware, "the app has its middleware"
    for middleware in app.user_middleware:
        assert not (isinstance(middleware.cls, type) and issubclass(middleware.cls, BaseHTTPMiddleware)), middleware


def test_requests_are_counted_by_route_template_and_status(app_and_admin: tuple[FastAPI, dict[str, str]]) -> None:
    app, admin = app_and_admin
    with TestClient(app) as client:
        for provider_id in ("a", "b", "c"):
            assert client.get(f"{API}/providers/{provider_id}", headers=admin).status_code == 404
        assert client.get(f"{API}/providers", headers=admin).status_code == 200
        assert client.get("/no/such/path").status_code == 404
        metrics = client.get("/metrics").text

    assert sample(metrics, "GET", f"{API}/providers/{{provider_id}}", "404") == 3
    assert sample(metrics, "GET", f"{API}/providers", "200") == 1
    assert sample(metrics, "GET", "unmatched", "404") == 1
    assert "/providers/a" not in metrics
    assert re.search(r'llmconfig_http_request_duration_seconds_count\{method="GET",route=".*/providers"\} 1', metrics)


def test_an_unexpected_error_is_a_500_problem_and_one_log_line_without_values(
    app_and_admin: tuple[FastAPI, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = app_and_admin

    @app.get("/boom")
    def boom() -> None:
        key = SECRET_IN_FRAME
        raise RuntimeError(f"failed with {key}")

    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=True) as client:
        response = client.get("/boom")  # would raise here if the error reached the server
        metrics = client.get("/metrics").text

    assert response.status_code == 500
    assert problem_of(response)["detail"] == "Internal error; the server log has the error type"
    assert SECRET_IN_FRAME not in response.text
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in errors] == ["unexpected RuntimeError while handling GET /boom"]
    assert all(record.exc_info is None for record in caplog.records)
    assert SECRET_IN_FRAME not in caplog.text
    assert sample(metrics, "GET", "/boom", "500") == 1


def dropped_usage(metrics: str) -> float:
    found = re.search(r"^llmconfig_usage_events_dropped_total (\S+)$", metrics, re.MULTILINE)
    assert found, "the metric is exported"
    return float(found.group(1))


def test_usage_events_dropped_by_a_full_queue_are_counted_on_metrics(
    sqlite_template: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    target = tmp_path / "usage.db"
    target.write_bytes(sqlite_template.read_bytes())
    service = LLMConfigService(settings_factory(database_url=f"sqlite:///{target}", usage_queue_size=2))
    recorder = service.usage_recorder
    event = UsageEvent(
        at=utcnow(),
        interaction_type="reasoning",
        user_id=None,
        provider_id=None,
        provider_name="p",
        model_name="m",
        prompt_tokens=1,
        completion_tokens=1,
        latency_ms=1.0,
        success=True,
        error_class=None,
    )
    try:
        with TestClient(create_app(service.settings, service=service)) as client:
            assert dropped_usage(client.get("/metrics").text) == 0
            # Another writer holds the database: the recorder's thread waits on its first write (for up to the
            # 30 s busy timeout) while calls go on recording, and the two-event queue fills.
            holder = sqlite3.connect(target, timeout=0)
            try:
                holder.execute("BEGIN EXCLUSIVE")
                for _ in range(50):
                    recorder.record(event)
                during = dropped_usage(client.get("/metrics").text)
            finally:
                holder.rollback()
                holder.close()
            assert recorder.flush(timeout=30)
            after = dropped_usage(client.get("/metrics").text)
    finally:
        service.close()
    # At most the batch the thread took before it waited and a refilled queue were kept: 1 + 2 + 2.
    assert during >= 45
    assert after == during == recorder.dropped
    with sqlite3.connect(target) as reader:
        (written,) = reader.execute("SELECT COUNT(*) FROM usage_records").fetchone()
    assert written + recorder.dropped == 50  # every event was either written or counted as dropped
