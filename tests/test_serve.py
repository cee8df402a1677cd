"""`llmconfig serve` as operators start it: migrations, the first admin token, tokens made by the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_tcp_port

CLI = str(Path(sys.executable).parent / "llmconfig")


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCONFIG_", "OPENAI_"))}
    env.update(
        LLMCONFIG_DATABASE_URL=f"sqlite:///{tmp_path}/llmconfig.db",
        LLMCONFIG_MASTER_KEY_FILE=str(tmp_path / "llmconfig.key"),
    )
    return env


def start(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_tcp_port()
    process = subprocess.Popen(
        [CLI, "serve"],
        env={**env, "LLMCONFIG_PORT": str(port)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"serve did not start: {process.communicate()[0]}")


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=20)
    return output


def test_first_start_migrates_and_prints_an_admin_token_once(tmp_path: Path) -> None:
    env = environment(tmp_path)
    process, url = start(env, tmp_path)
    try:
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        assert httpx.get(f"{url}/").status_code == 200
        assert httpx.get(f"{url}/api/v1/llm/providers").status_code == 401
    finally:
        first = stop(process)
    tokens = re.findall(r"Admin token \(shown once; store it now\): (llmc_\S+)", first)
    assert len(tokens) == 1, first
    token = tokens[0]

    process, url = start(env, tmp_path)
    try:
        response = httpx.get(f"{url}/api/v1/llm/providers", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and response.json() == []
    finally:
        second = stop(process)
    assert "Admin token" not in second and token not in second
    assert token not in (tmp_path / "llmconfig.db").read_bytes().decode("latin-1")


def test_tokens_made_and_revoked_with_the_cli(tmp_path: Path) -> None:
    env = {**environment(tmp_path), "LLMCONFIG_ADMIN_TOKEN": "llmc_env-admin-token-0123456789"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert cli("migrate").returncode == 0
    made = cli("tokens", "create", "--role", "viewer", "--name", "dashboards", "--json")
    assert made.returncode == 0, made.stderr
    import json

    created = json.loads(made.stdout)
    viewer = created["token"]
    assert created["info"]["role"] == "viewer" and viewer.startswith("llmc_")
    listed = cli("tokens", "list", "--json")
    assert viewer not in listed.stdout and "dashboards" in listed.stdout

    process, url = start(env, tmp_path)
    try:
        headers = {"Authorization": f"Bearer {viewer}"}
        assert httpx.get(f"{url}/api/v1/llm/config", headers=headers).status_code == 200
        assert (
            httpx.put(
                f"{url}/api/v1/llm/config/reasoning", json={"provider_id": "x", "model_name": "y"}, headers=headers
            ).status_code
            == 403
        )
        assert cli("tokens", "revoke", "dashboards").returncode == 0
        assert httpx.get(f"{url}/api/v1/llm/config", headers=headers).status_code == 401
        env_admin = {"Authorization": "Bearer llmc_env-admin-token-0123456789"}
        assert httpx.get(f"{url}/api/v1/llm/config", headers=env_admin).status_code == 200
    finally:
        output = stop(process)
    # An admin token from the environment means none is generated.
    assert "Admin token" not in output
    # An unknown role is Typer's usage error (tests/test_cli_choices.py), before anything is written.
    assert cli("tokens", "create", "--role", "owner").returncode == 2
