"""Faults of the parts llmconfig depends on: the secret backend and the database, down or damaged.

Each test breaks a real part (a ``moto_server`` killed and restarted on the same port, a PostgreSQL port
nothing listens on, a SQLite file in a missing directory or overwritten with garbage) and pins what the
service, the CLI and ``/health`` do: a clear one-line error that names the part, never a key, never a
traceback; the last resolved objects keep serving; and recovery needs no restart.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate
from llmconfig.db import create_db_engine, upgrade_to_head
from llmconfig.db.models import AuditEntry, ConfigRevision, Provider
from llmconfig.errors import DatabaseUnavailableError, LLMConfigError, SecretBackendError
from llmconfig.providers import ProviderCreate
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from tests.helpers import OPENAI_PEER_KEY, configure_reasoning, free_tcp_port
from tests.peers import OpenAIPeer
from tests.pgserver import PostgresServer

CLI = str(Path(sys.executable).parent / "llmconfig")
SECOND_KEY = "sk-canary-second-provider-5e1d7c3b9a"
STARTUP_SECONDS = 60.0


# ------------------------------------------------------------------------------------------------ a killable moto


class MotoServer:
    """A ``moto_server`` of one test, so that it can be killed and started again on the same port."""

    def __init__(self, log: Path) -> None:
        self.port = free_tcp_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        executable = Path(sys.executable).parent / "moto_server"
        with self.log.open("ab") as log_handle:
            self.process = subprocess.Popen(
                [str(executable), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log_handle, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"moto_server did not answer on port {self.port}", pytrace=False)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def client(self) -> Any:
        return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=self.url)

    def snapshot(self) -> dict[str, str]:
        """Every secret's name and value (moto keeps them in memory only; a real backend keeps them)."""
        client = self.client()
        names = [s["Name"] for s in client.list_secrets(MaxResults=100)["SecretList"]]
        return {name: client.get_secret_value(SecretId=name)["SecretString"] for name in names}

    def restore(self, secrets: dict[str, str]) -> None:
        client = self.client()
        for name, value in secrets.items():
            client.create_secret(Name=name, SecretString=value)


@pytest.fixture
def moto(aws_credentials: None, tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def rows(service: LLMConfigService) -> dict[str, int]:
    """How many providers and audit entries there are, and the revision counter."""
    with service.sessions() as session:
        return {
            "providers": session.scalar(select(func.count()).select_from(Provider)) or 0,
            "audit": session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
            "revision": session.scalar(select(ConfigRevision.revision)) or 0,
        }


def assert_clean_error(exc: BaseException, *secrets: str) -> str:
    """One line, no key, and nothing chained but another of our own one-line errors.

    A chained library exception would put its request details into any logged traceback.
    """
    message = str(exc)
    assert message and "\n" not in message, message
    assert exc.__cause__ is None, repr(exc.__cause__)
    context = None if exc.__suppress_context__ else exc.__context__
    assert context is None or (isinstance(context, LLMConfigError) and "\n" not in str(context)), repr(context)
    for secret in secrets:
        assert secret not in message
    return message


# ------------------------------------------------------------------------------------------------ secret backend down


def test_secret_backend_down_keeps_built_models_refuses_new_keys_and_recovers(
    moto: MotoServer,
    migrated_database_url: str,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_factory(
        database_url=migrated_database_url,
        secret_backend="aws",
        aws_endpoint_url=moto.url,
        aws_secret_prefix=f"llmconfig-{uuid.uuid4().hex[:8]}/",
        cache_ttl=0,
        request_timeout=15,
    )
    service = LLMConfigService(settings)
    cold: LLMConfigService | None = None
    try:
        configure_reasoning(service, openai_peer)
        built = service.get_llm("reasoning")
        assert built.invoke("hi").content == "Hello from openai-peer"
        tokens = TokenService(sessions=service.sessions)
        admin, _ = tokens.create(role="admin", name="faults")
        secrets = moto.snapshot()
        assert len(secrets) == 1

        moto.kill()
        caplog.clear()

        # The object built while the backend was up holds its key: it keeps answering, also for a new user.
        assert service.get_llm("reasoning") is built
        assert built.invoke("still there?").content == "Hello from openai-peer"
        assert service.get_llm("reasoning", user_id="u-new").model_name == "gpt-4o"  # type: ignore[attr-defined]

        # A cold resolution needs the key: a clear error naming the secret backend.
        cold = LLMConfigService(settings)
        with pytest.raises(SecretBackendError) as caught:
            cold.get_llm("reasoning")
        message = assert_clean_error(caught.value, OPENAI_PEER_KEY)
        assert "AWS Secrets Manager" in message and moto.url in message

        # So does the first resolution after a change (the change itself only touches the database).
        service.config.set_global(
            "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o", temperature=0.5), actor="t"
        )
        with pytest.raises(SecretBackendError) as caught:
            service.get_llm("reasoning")
        assert "AWS Secrets Manager" in assert_clean_error(caught.value, OPENAI_PEER_KEY)

        # Adding a provider with a key fails clearly and writes nothing.
        before = rows(service)
        with pytest.raises(SecretBackendError) as caught:
            service.providers.add(
                ProviderCreate(
                    name="second",
                    provider_type="custom",
                    api_base_url=openai_peer.base_url,
                    api_key=SecretStr(SECOND_KEY),
                ),
                validate=False,
            )
        assert "AWS Secrets Manager" in assert_clean_error(caught.value, SECOND_KEY)
        assert rows(service) == before

        with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as client:
            health = client.get("/health")
            assert health.status_code == 503, health.text
            problems = health.json()["problems"]
            assert set(problems) == {"secrets"} and "AWS Secrets Manager" in problems["secrets"]
            posted = client.post(
                "/api/v1/llm/providers",
                json={
                    "name": "third",
                    "provider_type": "custom",
                    "api_base_url": openai_peer.base_url,
                    "api_key": SECOND_KEY,
                },
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert posted.status_code == 503, posted.text
            assert posted.headers["content-type"].startswith("application/problem+json")
            assert "AWS Secrets Manager" in posted.json()["detail"] and SECOND_KEY not in posted.text
            assert rows(service) == before

            # Back on the same port, with its data: everything works again in the same processes.
            moto.start()
            moto.restore(secrets)
            deadline = time.monotonic() + STARTUP_SECONDS
            while (health := client.get("/health")).status_code != 200:
                assert time.monotonic() < deadline, health.text
                time.sleep(0.2)

        recovered = service.get_llm("reasoning")
        assert recovered.temperature == 0.5  # type: ignore[attr-defined]
        assert recovered.invoke("back?").content == "Hello from openai-peer"
        assert cold.get_llm("reasoning").invoke("cold?").content == "Hello from openai-peer"
        service.providers.add(
            ProviderCreate(
                name="second", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(SECOND_KEY)
            ),
            validate=False,
        )
        assert rows(service)["providers"] == 2
        assert "Traceback" not in caplog.text
        assert OPENAI_PEER_KEY not in caplog.text and SECOND_KEY not in caplog.text
    finally:
        if cold is not None:
            cold.close()
        service.close()


def test_removing_a_provider_while_the_secret_backend_is_down(
    moto: MotoServer,
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The row goes and the caller is told it went; the secret that could not be deleted is logged as orphaned."""
    engine = create_db_engine(sqlite_url)
    upgrade_to_head(engine)
    engine.dispose()
    settings = settings_factory(
        database_url=sqlite_url, secret_backend="aws", aws_endpoint_url=moto.url, aws_secret_prefix="rm/"
    )
    service = LLMConfigService(settings)
    try:
        service.providers.add(
            ProviderCreate(
                name="gone", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(SECOND_KEY)
            ),
            validate=False,
        )
        moto.kill()
        with caplog.at_level(logging.WARNING, logger="llmconfig.providers"):
            service.providers.remove("gone")
        assert rows(service)["providers"] == 0
        warnings = [r.getMessage() for r in caplog.records if r.name == "llmconfig.providers"]
        assert len(warnings) == 1 and "'gone'" in warnings[0] and "orphaned" in warnings[0], warnings
        assert SECOND_KEY not in caplog.text and "Traceback" not in caplog.text
    finally:
        service.close()


# ---------------------------------------------------------------------------------------------- database down at start


def cli_environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCONFIG_", "OPENAI_"))}
    env.update(
        LLMCONFIG_DATABASE_URL=database_url,
        LLMCONFIG_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
        LLMCONFIG_PORT=str(free_tcp_port()),
    )
    return env


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_with_postgresql_down_at_start_says_so_in_one_line(tmp_path: Path) -> None:
    env = cli_environment(tmp_path, f"postgresql+psycopg://nobody@127.0.0.1:{free_tcp_port()}/none")
    del env["LLMCONFIG_MASTER_KEY"]  # so that a key file would be created if anything got that far
    for args in (("serve",), ("providers", "list", "--json")):
        line = one_error_line(run_cli(env, tmp_path, *args))
        assert "database cannot be reached" in line and "Connection refused" in line, (args, line)
    assert not (tmp_path / "llmconfig.key").exists()


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("missing-dir/llmconfig.db", id="directory-missing"),
        pytest.param("a-file/llmconfig.db", id="parent-is-a-file"),
        pytest.param("/proc/llmconfig.db", id="not-writable"),
    ],
)
def test_cli_with_an_unusable_sqlite_path_says_so_in_one_line(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    path = where if where.startswith("/") else str(tmp_path / where)
    env = cli_environment(tmp_path, f"sqlite:///{path}")
    line = one_error_line(run_cli(env, tmp_path, "migrate"))
    assert f"SQLite database {path} cannot be used" in line and "unable to open database file" in line, line
    assert not (tmp_path / "missing-dir").exists()


@pytest.mark.parametrize(
    "database_url",
    [
        pytest.param("postgresql+psycopg://nobody@127.0.0.1:{port}/none", id="postgresql-closed-port"),
        pytest.param("sqlite:///{tmp_path}/missing-dir/llmconfig.db", id="sqlite-missing-directory"),
    ],
)
def test_library_with_the_database_down_at_start(
    database_url: str,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
) -> None:
    """Constructing the service does not touch the database; every use then fails clearly or falls back."""
    url = database_url.format(port=free_tcp_port(), tmp_path=tmp_path)
    service = LLMConfigService(settings_factory(database_url=url))
    try:
        with pytest.raises(LLMConfigError, match="configuration database is unreachable") as caught:
            service.get_llm("reasoning")
        assert "OPENAI_API_KEY" in assert_clean_error(caught.value)
        with pytest.raises(LLMConfigError, match="configuration database is unreachable"):
            service.get_embeddings()
        for call in (
            service.providers.list,
            service.config.get_global,
            lambda: service.config.set_global("reasoning", ConfigUpdate(provider_id="p", model_name="m"), actor="t"),
        ):
            with pytest.raises(DatabaseUnavailableError, match="cannot be (reached|used)") as unavailable:
                call()
            assert_clean_error(unavailable.value)
    finally:
        service.close()
    service = LLMConfigService(
        settings_factory(
            database_url=url, openai_api_key=SecretStr(OPENAI_PEER_KEY), openai_base_url=openai_peer.base_url
        )
    )
    try:
        fallback = service.get_llm("tools")
        assert fallback.model_name == "gpt-4o-mini"  # type: ignore[attr-defined]
        assert fallback.invoke("hi").content == "Hello from openai-peer"
    finally:
        service.close()


def test_a_service_started_before_postgresql_works_once_it_is_up(
    settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> None:
    server = PostgresServer(prefix="llmconfig-late-")  # initialised, not started
    try:
        service = LLMConfigService(settings_factory(database_url=server.url, cache_ttl=0))
        try:
            with pytest.raises(LLMConfigError, match="configuration database is unreachable"):
                service.get_llm("reasoning")
            server.start()
            upgrade_to_head(service.engine)
            configure_reasoning(service, openai_peer)
            assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
        finally:
            service.close()
    finally:
        server.remove()


# ---------------------------------------------------------------------------------------------- SQLite damaged mid-run


@pytest.fixture
def sqlite_service(
    tmp_path: Path, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> Iterator[tuple[LLMConfigService, Path]]:
    """A configured service on a SQLite file in a directory of its own (so it can be taken away)."""
    directory = tmp_path / "db"
    directory.mkdir()
    database = directory / "llmconfig.db"
    engine = create_db_engine(f"sqlite:///{database}")
    upgrade_to_head(engine)
    engine.dispose()
    service = LLMConfigService(settings_factory(database_url=f"sqlite:///{database}", cache_ttl=0))
    configure_reasoning(service, openai_peer)
    try:
        yield service, database
    finally:
        service.close()


def test_sqlite_directory_moved_away_mid_run(
    sqlite_service: tuple[LLMConfigService, Path], caplog: pytest.LogCaptureFixture
) -> None:
    service, database = sqlite_service
    built = service.get_llm("reasoning")
    moved = database.parent.with_name("db-moved")
    database.parent.rename(moved)

    # Pooled connections hold the open file: nothing notices yet (and the file lives on under its new name).
    service.invalidate()
    assert service.get_llm("reasoning") is built

    # New connections cannot open it: the last resolved objects keep serving, everything else fails clearly.
    service.engine.dispose()
    service.invalidate()
    with caplog.at_level(logging.ERROR, logger="llmconfig.llm"):
        assert service.get_llm("reasoning") is built
        assert service.get_llm("reasoning", user_id="u-new") is built
        assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
    assert len([r for r in caplog.records if "serving the last known configuration" in r.getMessage()]) == 1
    with pytest.raises(DatabaseUnavailableError, match="unable to open database file") as caught:
        service.config.set_global("tools", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    assert_clean_error(caught.value)
    with TestClient(create_app(service.settings, service=service), raise_server_exceptions=False) as client:
        down = client.get("/health")
        assert down.status_code == 503 and set(down.json()["problems"]) == {"database"}

        moved.rename(database.parent)
        assert client.get("/health").status_code == 200
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t")
    assert service.get_llm("reasoning").model_name == "gpt-4o-mini"  # type: ignore[attr-defined]


def overwrite_with_garbage(database: Path) -> None:
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    database.write_bytes(os.urandom(64 * 1024))


def test_sqlite_file_overwritten_while_connections_are_open_keeps_serving(
    sqlite_service: tuple[LLMConfigService, Path],
) -> None:
    """Open connections read the pages they cached and the WAL: the damage shows only to new connections."""
    service, database = sqlite_service
    built = service.get_llm("reasoning")
    with database.open("r+b") as handle:
        handle.write(os.urandom(8192))
    service.invalidate()
    assert service.get_llm("reasoning") is built


def test_sqlite_file_replaced_with_garbage_mid_run_is_an_outage(
    sqlite_service: tuple[LLMConfigService, Path],
) -> None:
    service, database = sqlite_service
    built = service.get_llm("reasoning")
    service.engine.dispose()
    overwrite_with_garbage(database)
    service.invalidate()
    with TestClient(create_app(service.settings, service=service), raise_server_exceptions=False) as client:
        assert client.get("/health").status_code == 503
    with pytest.raises(DatabaseUnavailableError):
        service.providers.list()
    assert service.get_llm("reasoning") is built


def test_cli_on_a_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(16 * 1024))
    result = run_cli(cli_environment(tmp_path, f"sqlite:///{garbage}"), tmp_path, "providers", "list")
    assert "file is not a database" in one_error_line(result)


def test_fresh_service_on_a_sqlite_file_that_is_not_a_database(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(16 * 1024))
    service = LLMConfigService(settings_factory(database_url=f"sqlite:///{garbage}"))
    try:
        with pytest.raises(LLMConfigError, match="file is not a database"):
            service.get_llm("reasoning")
    finally:
        service.close()
