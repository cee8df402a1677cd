"""The test infrastructure itself: real servers, really answering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmconfig.settings import Settings


def test_postgres_fixture_gives_a_working_server(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version()")).scalar_one()
    finally:
        engine.dispose()
    assert version.startswith("PostgreSQL")


def test_database_url_gives_a_fresh_writable_database(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
            conn.execute(sa.text("INSERT INTO probe (id, name) VALUES (1, 'ok')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM probe")).scalar_one() == "ok"
    finally:
        engine.dispose()


@pytest.fixture
def developer_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMCONFIG_PORT", "1234")
    monkeypatch.setenv("LLMCONFIG_SECRET_BACKEND", "aws")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LLMCONFIG_HOST=0.0.0.0\n")


def test_settings_factory_ignores_the_developers_environment_and_env_file(
    developer_environment: None, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(request_timeout=3)
    assert settings.port == 8900
    assert settings.host == "127.0.0.1"
    assert settings.secret_backend == "local"
    assert settings.request_timeout == 3
    assert settings.master_key_file == tmp_path / "llmconfig.key"
    assert settings.database_url == f"sqlite:///{tmp_path}/llmconfig.db"
