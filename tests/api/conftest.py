"""Fixtures for the REST API: an app on a migrated database, tokens of both roles, and a live server."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from tests.helpers import free_tcp_port

API = "/api/v1/llm"


@dataclass
class ApiContext:
    service: LLMConfigService
    app: FastAPI
    admin_token: str
    viewer_token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def viewer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.viewer_token}"}


@pytest.fixture
def api(service: LLMConfigService) -> ApiContext:
    """The app over the (SQLite and PostgreSQL) ``service``, with one admin and one viewer token."""
    tokens = TokenService(sessions=service.sessions)
    admin_token, _ = tokens.create(role="admin", name="test-admin")
    viewer_token, _ = tokens.create(role="viewer", name="test-viewer")
    return ApiContext(service, create_app(service.settings, service=service), admin_token, viewer_token)


@pytest.fixture
def client(api: ApiContext) -> Iterator[TestClient]:
    with TestClient(api.app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def live_server(api: ApiContext) -> Iterator[str]:
    """The same app served by a real uvicorn on a loopback port; yields its base URL."""
    port = free_tcp_port()
    # proxy_headers=False: the app decides whom to believe (LLMCONFIG_TRUSTED_PROXIES), not uvicorn.
    config = uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def make_settings(settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    return settings_factory


def problem_of(response: httpx.Response | Any) -> dict[str, Any]:
    """The problem+json body of an error response, after checking that it is one."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def sample(metrics: str, method: str, route: str, status: str) -> float:
    """The count of requests ``/metrics`` gives for a method, route template and status (0 if none)."""
    pattern = (
        rf'^llmconfig_http_requests_total\{{method="{method}",route="{re.escape(route)}",status="{status}"\}} (\S+)$'
    )
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
