"""Real separate processes for tests: ``llmconfig serve`` replicas and agent processes (tests/agent_process.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.pgserver import free_tcp_port

LLMCONFIG = str(Path(sys.executable).parent / "llmconfig")
AGENT = str(Path(__file__).parent / "agent_process.py")
ADMIN_TOKEN = "llmc_test-admin-token-0123456789abcdef"
SCRUBBED_PREFIXES = ("LLMCONFIG_", "OPENAI_", "ANTHROPIC_")


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any llmconfig or provider settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(extra)
    return env


class ServeProcess:
    """``llmconfig serve`` on a free loopback port, with a known admin token."""

    def __init__(self, database_url: str, workdir: Path, **extra: str) -> None:
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_environment(
            LLMCONFIG_DATABASE_URL=database_url,
            LLMCONFIG_MASTER_KEY_FILE=str(workdir / "llmconfig.key"),
            LLMCONFIG_ADMIN_TOKEN=ADMIN_TOKEN,
            LLMCONFIG_PORT=str(self.port),
            **extra,
        )
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def start(self, timeout: float = 60) -> ServeProcess:
        self.process = subprocess.Popen(
            [LLMCONFIG, "serve"],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llmconfig serve exited: {self.process.communicate()[0]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("llmconfig serve did not answer /health in time")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1/llm{path}", headers=self.admin, timeout=15, **kwargs)

    def stop(self) -> str:
        if self.process is None:
            return ""
        self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        self.process = None
        return output

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.communicate()
            self.process = None


class AgentProcess:
    """A separate interpreter running tests/agent_process.py with exactly the environment given."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.process = subprocess.Popen(
            # -P: the script's folder stays off sys.path (tests/secrets would shadow the standard library's).
            [sys.executable, "-P", AGENT],
            env=env,
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, *words: str) -> Any:
        """The value of one command; AssertionError (with the traceback) when it failed."""
        answer = self.answer(*words)
        assert answer["ok"], f"{' '.join(words)} failed: {answer['error']}: {answer['message']}\n{answer['trace']}"
        return answer["value"]

    def answer(self, *words: str) -> dict[str, Any]:
        """The raw answer of one command: ``{"ok": true, "value": …}`` or ``{"ok": false, "error", "message"}``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(" ".join(words) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the agent process ended: {self.stop()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> str:
        """End the process; its stderr (log lines)."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            _, errors = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, errors = self.process.communicate()
        return errors


def configure(server: ServeProcess, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> None:
    """Providers ``local`` (OpenAI wire format) and ``claude``; reasoning, tools and embeddings; one override."""
    local = server.api(
        "POST",
        "/providers",
        json={
            "name": "local",
            "provider_type": "custom",
            "api_base_url": openai_peer.base_url,
            "api_key": OPENAI_PEER_KEY,
        },
    )
    assert local.status_code == 201, local.text
    claude = server.api(
        "POST",
        "/providers",
        json={
            "name": "claude",
            "provider_type": "anthropic",
            "api_base_url": anthropic_peer.root_url,
            "api_key": ANTHROPIC_PEER_KEY,
        },
    )
    assert claude.status_code == 201, claude.text
    for path, body in (
        ("/config/reasoning", {"provider_id": "local", "model_name": "gpt-4o"}),
        ("/config/tools", {"provider_id": "claude", "model_name": "claude-haiku-4-5"}),
        ("/config/embeddings", {"provider_id": "local", "model_name": "text-embedding-3-small"}),
        ("/users/u-42/config/reasoning", {"provider_id": "local", "model_name": "gpt-4o-mini"}),
    ):
        response = server.api("PUT", path, json=body)
        assert response.status_code == 200, response.text


def client_token(server: ServeProcess, **limits: Any) -> str:
    response = server.api("POST", "/tokens", json={"name": "agents", "role": "client", **limits})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def agent_for(server_url: str, token: str, agent_dir: Path, **extra: str) -> AgentProcess:
    return AgentProcess(clean_environment(LLMCONFIG_SERVER_URL=server_url, LLMCONFIG_TOKEN=token, **extra), agent_dir)
