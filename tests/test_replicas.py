"""Several processes on one PostgreSQL: pushed invalidation, reconnection, and surviving a database outage."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate
from llmconfig.db.notifications import APPLICATION_NAME
from tests.helpers import configure_reasoning, free_tcp_port, psycopg_conninfo
from tests.peers import OpenAIPeer
from tests.pgserver import PostgresServer

ADMIN_TOKEN = "llmc_test-admin-token-for-replicas"

# A library process: prints the model get_llm("reasoning") returns, each time it changes.
WATCHER = """
import sys, time, llmconfig
last = None
while True:
    model = llmconfig.get_llm("reasoning").model_name
    if model != last:
        print(model, flush=True)
        last = model
    time.sleep(0.005)
"""

postgres_only = pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)


def environment(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCONFIG_", "OPENAI_"))}
    env.update(
        LLMCONFIG_DATABASE_URL=database_url,
        LLMCONFIG_MASTER_KEY_FILE=str(tmp_path / "llmconfig.key"),
        LLMCONFIG_ADMIN_TOKEN=ADMIN_TOKEN,
        **extra,
    )
    return env


class Lines:
    """The lines a subprocess prints, read in a thread so that waiting for one can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.strip())

    def wait_for(self, wanted: str, timeout: float) -> float:
        """Seconds until ``wanted`` was printed; fails after ``timeout``."""
        started = time.monotonic()
        while True:
            remaining = timeout - (time.monotonic() - started)
            try:
                line = self._lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                pytest.fail(f"{wanted!r} not seen within {timeout} s")
            if line == wanted:
                return time.monotonic() - started


@pytest.fixture
def configured(service: LLMConfigService, openai_peer: OpenAIPeer) -> LLMConfigService:
    configure_reasoning(service, openai_peer)
    return service


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def serve(env: dict[str, str], tmp_path: Path, processes: list[subprocess.Popen[str]]) -> str:
    port = free_tcp_port()
    cli = str(Path(sys.executable).parent / "llmconfig")
    process = subprocess.Popen(
        [cli, "serve"],
        env={**env, "LLMCONFIG_PORT": str(port)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    processes.append(process)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail("llmconfig serve did not start")


def watch(env: dict[str, str], tmp_path: Path, processes: list[subprocess.Popen[str]]) -> Lines:
    process = subprocess.Popen(
        [sys.executable, "-c", WATCHER], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    processes.append(process)
    assert process.stdout is not None
    return Lines(process.stdout)


@postgres_only
def test_a_change_through_one_replica_reaches_a_library_process_and_survives_a_killed_listener(
    configured: LLMConfigService,
    migrated_database_url: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    # The service's master key file is tmp_path/llmconfig.key too: every process can decrypt the key.
    assert configured.settings.master_key_file == tmp_path / "llmconfig.key"
    env = environment(migrated_database_url, tmp_path, LLMCONFIG_CACHE_TTL="3600")
    replica_a = serve(env, tmp_path, processes)
    replica_b = serve(env, tmp_path, processes)
    library = watch(env, tmp_path, processes)
    library.wait_for("gpt-4o", timeout=60)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    # A one-hour TTL: only a pushed notification can make the library see the change this fast.
    put = httpx.put(
        f"{replica_a}/api/v1/llm/config/reasoning",
        json={"provider_id": "local", "model_name": "gpt-4o-mini"},
        headers=headers,
        timeout=10,
    )
    assert put.status_code == 200, put.text
    assert library.wait_for("gpt-4o-mini", timeout=1.0) < 1.0
    assert httpx.get(f"{replica_b}/api/v1/llm/config", headers=headers).json()["reasoning"]["model_name"] == (
        "gpt-4o-mini"
    )

    # Kill every listening connection, change the configuration while they are down: after reconnecting,
    # the library resyncs and sees the change.
    with psycopg.connect(psycopg_conninfo(migrated_database_url), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchone()
        assert killed is not None and killed[0] >= 4  # two replicas, the library and this test's service
    put = httpx.put(
        f"{replica_b}/api/v1/llm/config/reasoning",
        json={"provider_id": "local", "model_name": "local-chat"},
        headers=headers,
        timeout=10,
    )
    assert put.status_code == 200, put.text
    library.wait_for("local-chat", timeout=10)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, so that it can be stopped and started again."""
    with PostgresServer(prefix="llmconfig-outage-", restartable=True) as server:
        yield server


def test_a_database_outage_is_served_from_last_known_good_and_recovered_from(
    own_postgres: PostgresServer, settings_factory: object, openai_peer: OpenAIPeer, caplog: pytest.LogCaptureFixture
) -> None:
    from llmconfig.db import upgrade_to_head

    settings = settings_factory(database_url=own_postgres.url, cache_ttl=0.2)  # type: ignore[operator]
    service = LLMConfigService(settings)
    try:
        upgrade_to_head(service.engine)
        configure_reasoning(service, openai_peer)
        before = service.get_llm("reasoning")
        with TestClient(create_app(settings, service=service)) as client:
            assert client.get("/health").status_code == 200

            own_postgres.stop()
            service.invalidate()  # as after a notification: the next call has to resolve again
            during = service.get_llm("reasoning")
            assert during is before
            assert during.invoke("hi").content == "Hello from openai-peer"
            assert service.get_llm("reasoning", user_id="someone-new").model_name == "gpt-4o"  # type: ignore[attr-defined]
            outage = client.get("/health")
            assert outage.status_code == 503 and "database" in outage.json()["problems"]
            logged = [r for r in caplog.records if "serving the last known configuration" in r.getMessage()]
            assert len(logged) == 1

            own_postgres.start()
            deadline = time.monotonic() + 30
            while client.get("/health").status_code != 200:
                assert time.monotonic() < deadline, "did not recover"
                time.sleep(0.2)
            service.config.set_global(
                "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t"
            )
            assert service.get_llm("reasoning").model_name == "gpt-4o-mini"  # type: ignore[attr-defined]
    finally:
        service.close()
