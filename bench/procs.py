"""Subprocesses the bench starts (servers, peers, library processes), and stopping every one of them."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from tests.pgserver import free_tcp_port

from bench.postgres import BenchError

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a child: nothing of the caller's llmconfig/provider settings, plus ``overrides``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLMCONFIG_", "OPENAI_", "ANTHROPIC_", "AWS_"))
    }
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


class Processes:
    """Every child the bench started; :meth:`stop_all` ends them (by pid, newest first)."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, env: dict[str, str], cwd: Path, stdout: IO[bytes] | int | None = None
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self._children.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process in self._children:
            self._children.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self._children)):
            self.stop(process)


def read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The next line the child writes to stdout, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline()
                if not line:
                    raise BenchError(f"{process.args!r} exited (code {process.poll()}) before answering")
                return line.decode(errors="replace").strip()
    raise BenchError(f"{process.args!r} did not answer within {timeout:.0f} s")


@dataclass
class Server:
    """One ``llmconfig serve`` replica."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(procs: Processes, workdir: Path, *, name: str, env: dict[str, str]) -> Server:
    """Start ``llmconfig serve`` on a free loopback port and wait until ``GET /health`` answers 200."""
    port = free_tcp_port()
    log = workdir / f"{name}.log"
    cwd = workdir / name
    cwd.mkdir(parents=True, exist_ok=True)  # no stray .env is read from here
    with log.open("wb") as handle:
        process = procs.start(
            [str(BIN / "llmconfig"), "serve"],
            env={**env, "LLMCONFIG_HOST": "127.0.0.1", "LLMCONFIG_PORT": str(port)},
            cwd=cwd,
            stdout=handle,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"llmconfig serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return Server(url, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"llmconfig serve did not become healthy at {url}:\n{log.read_text()[-3000:]}")


def start_openai_peer(procs: Processes, workdir: Path, *, models: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A loopback OpenAI peer in its own process (so it does not share the bench's GIL); its /v1 URL."""
    process = procs.start(
        [sys.executable, "-m", "tests.peers.openai_peer", "--port", "0", "--no-auth", "--models", models],
        env=clean_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    line = read_line(process, timeout=60)
    if not line.startswith("READY "):
        raise BenchError(f"OpenAI peer answered {line!r} instead of READY URL")
    root = line.split()[1].rstrip("/")
    return f"{root}/v1", process


def start_bare_app(procs: Processes, workdir: Path, *, body: Path) -> Server:
    """The bare Starlette app of figure 4 (``bench.bare_app``) on a free loopback port, once it answers."""
    port = free_tcp_port()
    log = workdir / "bare-app.log"
    with log.open("wb") as handle:
        process = procs.start(
            [sys.executable, "-m", "bench.bare_app", "--port", str(port), "--body", str(body)],
            env=clean_env(),
            cwd=REPO,
            stdout=handle,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the bare app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v1/llm/config", timeout=2).status_code == 200:
                return Server(url, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"the bare app did not answer at {url}:\n{log.read_text()[-3000:]}")
