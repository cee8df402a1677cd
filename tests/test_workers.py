"""`llmconfig serve` with LLMCONFIG_WORKERS=2: both workers serve, a write through one is read through the other,
and the workers stop with the parent. On SQLite and on PostgreSQL, with real processes and real sockets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmconfig import LLMConfigService
from tests.helpers import configure_reasoning, free_tcp_port
from tests.peers import OpenAIPeer

CLI = str(Path(sys.executable).parent / "llmconfig")
ADMIN_TOKEN = "llmc_test-admin-token-for-workers"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONFIG = "/api/v1/llm/config"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Workers:
    """A running ``llmconfig serve`` with several workers, and one keep-alive client bound to each of them."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.clients: dict[int, httpx.Client] = {}

    def bind_clients(self, count: int, timeout: float = 90) -> None:
        """Open connections until ``count`` worker pids have answered ``/health``; keep one client per pid."""
        deadline = time.monotonic() + timeout
        spare: list[httpx.Client] = []
        try:
            while len(self.clients) < count:
                assert time.monotonic() < deadline, f"only workers {sorted(self.clients)} answered"
                assert self.process.poll() is None, "serve exited"
                # Connections held open keep a worker busy, so that the next one is accepted by another.
                client = httpx.Client(
                    base_url=self.url, headers=ADMIN, timeout=10, limits=httpx.Limits(max_connections=1)
                )
                try:
                    response = client.get("/health")
                except httpx.HTTPError:
                    client.close()
                    time.sleep(0.2)
                    continue
                pid = response.json().get("pid") if response.status_code == 200 else None
                if isinstance(pid, int) and pid not in self.clients:
                    self.clients[pid] = client
                else:
                    spare.append(client)
        finally:
            for client in spare:
                client.close()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture
def configured(service: LLMConfigService, openai_peer: OpenAIPeer) -> LLMConfigService:
    configure_reasoning(service, openai_peer)
    return service


def start_workers(database_url: str, tmp_path: Path, *, cache_ttl: float) -> Workers:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCONFIG_", "OPENAI_"))}
    port = free_tcp_port()
    env.update(
        LLMCONFIG_DATABASE_URL=database_url,
        LLMCONFIG_MASTER_KEY_FILE=str(tmp_path / "llmconfig.key"),
        LLMCONFIG_ADMIN_TOKEN=ADMIN_TOKEN,
        LLMCONFIG_WORKERS="2",
        LLMCONFIG_CACHE_TTL=str(cache_ttl),
        LLMCONFIG_PORT=str(port),
    )
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([CLI, "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True)
    return Workers(process, f"http://127.0.0.1:{port}")


@pytest.fixture
def workers(configured: LLMConfigService, migrated_database_url: str, tmp_path: Path) -> Iterator[Workers]:
    # SQLite: other workers' writes are found by the revision check, every second. PostgreSQL: an hour, so
    # that only a pushed notification can bring the change in time.
    ttl = 1.0 if migrated_database_url.startswith("sqlite") else 3600.0
    running = start_workers(migrated_database_url, tmp_path, cache_ttl=ttl)
    try:
        running.bind_clients(2)
        yield running
    finally:
        running.close()
        if running.process.poll() is None:
            running.process.terminate()
            try:
                running.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()


def model_through(client: httpx.Client) -> str:
    response = client.get(CONFIG)
    assert response.status_code == 200, response.text
    return str(response.json()["reasoning"]["model_name"])


def test_two_workers_serve_and_a_write_through_one_is_read_through_the_other(workers: Workers, tmp_path: Path) -> None:
    (first_pid, first), (second_pid, second) = workers.clients.items()
    assert first_pid != second_pid and workers.process.pid not in workers.clients
    assert model_through(first) == model_through(second) == "gpt-4o"

    put = first.put(f"{CONFIG}/reasoning", json={"provider_id": "local", "model_name": "gpt-4o-mini"})
    assert put.status_code == 200, put.text
    assert model_through(first) == "gpt-4o-mini"  # its own write, at once

    deadline = time.monotonic() + 15
    while (seen := model_through(second)) != "gpt-4o-mini":
        assert time.monotonic() < deadline, f"worker {second_pid} still serves {seen}"
        time.sleep(0.05)

    log = (tmp_path / "serve.log").read_text()
    assert "Serving with uvloop and httptools, 2 worker processes." in log


def test_terminating_the_parent_stops_every_worker(workers: Workers) -> None:
    pids = list(workers.clients)
    assert all(alive(pid) for pid in pids)
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{workers.url}/health", timeout=2)


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
def test_workers_of_a_killed_parent_stop_by_themselves(workers: Workers) -> None:
    pids = list(workers.clients)
    workers.process.send_signal(signal.SIGKILL)
    workers.process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {[p for p in pids if alive(p)]} outlived their parent"
        time.sleep(0.2)


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
def test_one_worker_is_the_default(configured: LLMConfigService, migrated_database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCONFIG_", "OPENAI_"))}
    port = free_tcp_port()
    env.update(
        LLMCONFIG_DATABASE_URL=migrated_database_url,
        LLMCONFIG_MASTER_KEY_FILE=str(tmp_path / "llmconfig.key"),
        LLMCONFIG_ADMIN_TOKEN=ADMIN_TOKEN,
        LLMCONFIG_PORT=str(port),
    )
    process = subprocess.Popen(
        [CLI, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and process.poll() is None, "serve did not start"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health.json()["pid"] == process.pid  # served by the serve process itself
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert re.search(r"Serving with uvloop and httptools, 1 worker process\.", output), output
