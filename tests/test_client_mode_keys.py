"""Several keys per provider in client mode: the resolve payload carries every key, and an agent process rotates.

A real ``llmconfig serve`` (SQLite) and a separate agent interpreter with only LLMCONFIG_SERVER_URL and
LLMCONFIG_TOKEN; the loopback peers answer 429 or 401 to one key. Usage posted by the agent names the key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.processes import AgentProcess, ServeProcess, clean_environment

SECOND_OPENAI_KEY = "sk-canary-second-openai-4c1d8e2f"
SECOND_ANTHROPIC_KEY = "sk-ant-canary-second-9e7a3b51"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    (tmp_path / "server").mkdir()
    serving = ServeProcess(f"sqlite:///{tmp_path}/server/llmconfig.db", tmp_path / "server").start()
    try:
        yield serving
    finally:
        serving.stop()


def provider_with_two_keys(server: ServeProcess, body: dict[str, Any], second: str) -> str:
    created = server.api("POST", "/providers", json=body)
    assert created.status_code == 201, created.text
    added = server.api("POST", f"/providers/{created.json()['id']}/keys", json={"api_key": second})
    assert added.status_code == 201, added.text
    return str(created.json()["id"])


def usage_by_key(server: ServeProcess, expected_calls: int) -> dict[str, int]:
    deadline = time.monotonic() + 15
    while True:
        report = server.api("GET", "/usage", params={"group_by": "key"}).json()
        calls = {group["key"]: group["calls"] for group in report["groups"]}
        if sum(calls.values()) >= expected_calls or time.monotonic() > deadline:
            return calls
        time.sleep(0.2)


def test_an_agent_rotates_the_keys_the_server_hands_it_and_rests_the_one_that_got_429_or_401(
    server: ServeProcess, tmp_path: Path, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    local = provider_with_two_keys(
        server,
        {"name": "local", "provider_type": "custom", "api_base_url": openai_peer.base_url, "api_key": OPENAI_PEER_KEY},
        SECOND_OPENAI_KEY,
    )
    claude = provider_with_two_keys(
        server,
        {
            "name": "claude",
            "provider_type": "anthropic",
            "api_base_url": anthropic_peer.root_url,
            "api_key": ANTHROPIC_PEER_KEY,
        },
        SECOND_ANTHROPIC_KEY,
    )
    for path, body in (
        ("/config/reasoning", {"provider_id": local, "model_name": "gpt-4o"}),
        ("/config/tools", {"provider_id": claude, "model_name": "claude-haiku-4-5"}),
    ):
        assert server.api("PUT", path, json=body).status_code == 200
    token = server.api("POST", "/tokens", json={"name": "agents", "role": "client"}).json()["token"]

    resolved = httpx.get(
        f"{server.url}/api/v1/llm/resolve/reasoning", headers={"Authorization": f"Bearer {token}"}, timeout=15
    ).json()
    (target,) = resolved["targets"]
    # api_key stays the first key (what clients of before read); api_keys has every key, with id and hint.
    assert target["api_key"] == OPENAI_PEER_KEY
    assert [(k["api_key"], k["hint"]) for k in target["api_keys"]] == [
        (OPENAI_PEER_KEY, OPENAI_PEER_KEY[-4:]),
        (SECOND_OPENAI_KEY, SECOND_OPENAI_KEY[-4:]),
    ]

    openai_peer.accepted_keys.add(SECOND_OPENAI_KEY)
    anthropic_peer.accepted_keys.add(SECOND_ANTHROPIC_KEY)
    openai_peer.answer_key(OPENAI_PEER_KEY, 429, retry_after="30")
    anthropic_peer.answer_key(ANTHROPIC_PEER_KEY, 401)
    (tmp_path / "agent").mkdir()
    agent = AgentProcess(clean_environment(LLMCONFIG_SERVER_URL=server.url, LLMCONFIG_TOKEN=token), tmp_path / "agent")
    try:
        for _ in range(3):
            assert agent.ask("invoke", "reasoning", "-") == "Hello from openai-peer"
        assert agent.ask("ainvoke", "tools", "-") == "Hello from anthropic-peer"
        assert agent.ask("invoke", "tools", "-") == "Hello from anthropic-peer"
        assert agent.ask("flush") is True
    finally:
        errors = agent.stop()

    # The first call met the 429 and went on at once with the second key; the resting key was not tried again.
    assert openai_peer.keys_sent("/v1/chat/completions") == [OPENAI_PEER_KEY] + [SECOND_OPENAI_KEY] * 3
    assert anthropic_peer.keys_sent("/v1/messages") == [ANTHROPIC_PEER_KEY] + [SECOND_ANTHROPIC_KEY] * 2
    calls = usage_by_key(server, 5)
    assert calls == {f"local …{SECOND_OPENAI_KEY[-4:]}": 3, f"claude …{SECOND_ANTHROPIC_KEY[-4:]}": 2}, calls
    for key in (OPENAI_PEER_KEY, SECOND_OPENAI_KEY, ANTHROPIC_PEER_KEY, SECOND_ANTHROPIC_KEY):
        assert key not in errors
    served = server.stop()
    for key in (OPENAI_PEER_KEY, SECOND_OPENAI_KEY, ANTHROPIC_PEER_KEY, SECOND_ANTHROPIC_KEY):
        assert key not in served
