from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from llmconfig.api import create_app
from tests.helpers import free_tcp_port


def test_health_is_ok_when_database_and_secrets_answer(settings_factory: Any, migrated_database_url: str) -> None:
    with TestClient(create_app(settings_factory(database_url=migrated_database_url))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_health_is_503_naming_the_database_when_it_is_down(settings_factory: Any) -> None:
    settings = settings_factory(database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_tcp_port()}/none")
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and "database" in body["problems"]
    assert "secrets" not in body["problems"]


def test_health_is_503_naming_the_secret_backend_when_it_is_down(settings_factory: Any, sqlite_url: str) -> None:
    settings = settings_factory(
        database_url=sqlite_url, secret_backend="aws", aws_endpoint_url=f"http://127.0.0.1:{free_tcp_port()}"
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert set(response.json()["problems"]) == {"secrets"}
