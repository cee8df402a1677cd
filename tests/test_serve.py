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

from tests.helpers import free_tcp_port

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
        # Revoked by another process: refused within LLMCONFIG_CACHE_TTL (1 s), when the server reads the tokens.
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/api/v1/llm/config", headers=headers).status_code != 401:
            assert time.monotonic() < deadline, "the revoked token is still accepted"
            time.sleep(0.05)
        env_admin = {"Authorization": "Bearer llmc_env-admin-token-0123456789"}
        assert httpx.get(f"{url}/api/v1/llm/config", headers=env_admin).status_code == 200
    finally:
        output = stop(process)
    # An admin token from the environment means none is generated.
    assert "Admin token" not in output
    # An unknown role is Typer's usage error (tests/test_cli_choices.py), before anything is written.
    assert cli("tokens", "create", "--role", "owner").returncode == 2


def test_client_tokens_limited_to_some_types_are_made_with_the_cli(tmp_path: Path) -> None:
    env = environment(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert cli("migrate").returncode == 0
    made = cli("tokens", "create", "--role", "client", "--name", "agents", "--types", "reasoning, tools", "--json")
    assert made.returncode == 0, made.stderr
    import json

    info = json.loads(made.stdout)["info"]
    assert (info["role"], info["interaction_types"]) == ("client", ["reasoning", "tools"])
    unknown = cli("tokens", "create", "--role", "client", "--types", "reasoning,dreaming")
    assert unknown.returncode == 1 and "'dreaming'" in unknown.stderr and "known:" in unknown.stderr
    not_client = cli("tokens", "create", "--role", "viewer", "--types", "reasoning")
    assert not_client.returncode == 1 and "Only client tokens" in not_client.stderr
    assert len(json.loads(cli("tokens", "list", "--json").stdout)) == 1  # the refused ones wrote nothing


def test_serve_does_not_take_the_client_address_from_forwarded_headers_of_an_untrusted_peer(tmp_path: Path) -> None:
    # uvicorn's default trusts X-Forwarded-For from 127.0.0.1: each forged address would get a bucket of its own.
    env = {**environment(tmp_path), "LLMCONFIG_ADMIN_TOKEN": "llmc_env-admin-token-0123456789"}
    process, url = start(env, tmp_path)
    try:
        statuses = [
            httpx.get(
                f"{url}/api/v1/llm/config",
                headers={"Authorization": "Bearer llmc_wrong", "X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(12)
        ]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
        admin = {"Authorization": "Bearer llmc_env-admin-token-0123456789"}
        assert httpx.get(f"{url}/api/v1/llm/config", headers=admin).status_code == 200  # never locked out
    finally:
        stop(process)
