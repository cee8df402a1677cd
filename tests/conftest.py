"""Real parts for the whole test suite: a PostgreSQL server, a moto Secrets Manager server, settings.

Nothing here is a mock. PostgreSQL is Debian's server started in a temporary directory (``make test``
installs it); set ``LLMCONFIG_TEST_POSTGRES_URL`` to use an existing server instead. moto is the real
``moto_server`` executable from the virtual environment, listening on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from llmconfig import LLMConfigService
from llmconfig.db import create_db_engine, upgrade_to_head
from llmconfig.settings import Settings
from tests.helpers import (
    ANTHROPIC_PEER_KEY,
    OPENAI_PEER_KEY,
    PEER_KINDS,
    PeerProvider,
    provider_of_peer,
    psycopg_conninfo,
    requested_timeout,
)
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.pgserver import PostgresServer, PostgresServerError, free_tcp_port

POSTGRES_URL_ENV = "LLMCONFIG_TEST_POSTGRES_URL"
STARTUP_TIMEOUT_SECONDS = 60.0


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server for this session, superuser ``postgres``, trust authentication."""
    external = os.environ.get(POSTGRES_URL_ENV)
    if external:
        yield make_url(external).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return
    try:
        server = PostgresServer()
        server.__enter__()
    except PostgresServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path}/llmconfig.db"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database; tests using it run once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/llmconfig.db"
        return
    server_url: str = request.getfixturevalue("postgres_url")
    name = f"llmconfig_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(psycopg_conninfo(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(psycopg_conninfo(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session, copied by ``migrated_database_url``."""
    path = tmp_path_factory.mktemp("template") / "llmconfig.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> str:
    """A PostgreSQL database migrated to head once per session, cloned by ``migrated_database_url``."""
    name = f"llmconfig_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(psycopg_conninfo(postgres_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = create_db_engine(make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
    upgrade_to_head(engine)
    engine.dispose()  # a template must have no open connections to be cloned
    return name


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def migrated_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database already at the latest schema revision, on SQLite and on PostgreSQL.

    Cloning a migrated template is several times faster than migrating every test's database.
    """
    if request.param == "sqlite":
        target = tmp_path / "llmconfig.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    server_url: str = request.getfixturevalue("postgres_url")
    template: str = request.getfixturevalue("postgres_template")
    name = f"llmconfig_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(psycopg_conninfo(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(psycopg_conninfo(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ------------------------------------------------------------------------------------------------ AWS/moto


@pytest.fixture(scope="session")
def aws_credentials() -> Iterator[None]:
    """Fake AWS credentials for the session, and nothing from the developer's own AWS setup."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        patch.delenv(name, raising=False)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_CONFIG_FILE", os.devnull)
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    try:
        yield
    finally:
        patch.undo()


def _wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"moto_server exited with {process.returncode}:\n{log.read_text(errors='replace')}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is serving
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer at {url} within {STARTUP_TIMEOUT_SECONDS:.0f}s", pytrace=False)


@pytest.fixture(scope="session")
def moto_endpoint(aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real ``moto_server`` (AWS APIs incl. Secrets Manager) on loopback for this session."""
    executable = Path(sys.executable).parent / "moto_server"
    if not executable.exists():
        pytest.fail(f"{executable} not found: run `make test` (installs the test extras).", pytrace=False)
    port = free_tcp_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(f"{endpoint}/moto-api/", process, log)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------------ settings


@pytest.fixture
def settings_factory(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Build :class:`Settings` for one test: no ``.env``, no ``LLMCONFIG_*`` from the developer's shell.

    Defaults: a fresh SQLite database and a master key file in ``tmp_path``; keyword overrides win.
    """
    for name in list(os.environ):
        if name.startswith("LLMCONFIG_") and not name.startswith("LLMCONFIG_TEST_"):
            monkeypatch.delenv(name)
    # No environment fallback unless a test asks for one (openai_api_key=..., openai_base_url=...).
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": sqlite_url, "master_key_file": tmp_path / "llmconfig.key"}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


# ------------------------------------------------------------------------------------------------ service and peers


@pytest.fixture
def service(
    request: pytest.FixtureRequest, migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> Iterator[LLMConfigService]:
    """A migrated :class:`LLMConfigService` on SQLite and on PostgreSQL; cache TTL 0 so changes show at once."""
    timeout = requested_timeout(request)
    svc = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=0, request_timeout=timeout))
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def openai_peer() -> Iterator[OpenAIPeer]:
    with OpenAIPeer(
        api_key=OPENAI_PEER_KEY, models=("gpt-4o", "gpt-4o-mini", "local-chat", "text-embedding-3-small")
    ) as peer:
        yield peer


@pytest.fixture
def anthropic_peer() -> Iterator[AnthropicPeer]:
    with AnthropicPeer(api_key=ANTHROPIC_PEER_KEY) as peer:
        yield peer


@pytest.fixture(params=PEER_KINDS)
def peer_provider(request: pytest.FixtureRequest) -> PeerProvider:
    """The OpenAI peer, then the Anthropic peer, as a provider: a test using it runs once against each."""
    kind: str = request.param
    return provider_of_peer(kind, request.getfixturevalue(f"{kind}_peer"))
