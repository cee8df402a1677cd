"""Client mode: agent processes with only LLMCONFIG_SERVER_URL and LLMCONFIG_TOKEN, against real servers.

Every process here is real and separate: ``llmconfig serve`` (on SQLite, and two replicas on PostgreSQL),
and agent interpreters (tests/agent_process.py) whose environment holds no database URL and no master key.
The providers are the loopback OpenAI and Anthropic peers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmconfig.llm.resolved import ResolvedConfig
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply, ToolCall
from tests.processes import ServeProcess, agent_for, client_token, configure

# How long a pushed change may take to reach an agent here: generous for a loaded 2-core machine; the
# benchmarks measure the real figure.
PUSHED_WITHIN = "10"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServeProcess]:
    (tmp_path / "server").mkdir()
    server = ServeProcess(f"sqlite:///{tmp_path}/server/llmconfig.db", tmp_path / "server").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "agent"
    directory.mkdir()
    return directory


def test_an_agent_with_only_a_server_url_and_a_token_follows_the_configuration(
    sqlite_server: ServeProcess, agent_dir: Path, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(sqlite_server, openai_peer, anthropic_peer)
    agent = agent_for(sqlite_server.url, client_token(sqlite_server), agent_dir)
    try:
        assert agent.ask("invoke", "reasoning", "-") == "Hello from openai-peer"
        sent = openai_peer.requests_to("/v1/chat/completions")[-1]
        assert sent.json["model"] == "gpt-4o" and sent.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"
        assert agent.ask("model", "reasoning", "u-42") == "gpt-4o-mini"  # the user's override
        assert agent.ask("invoke", "reasoning", "u-42") == "Hello from openai-peer"
        assert agent.ask("ainvoke", "tools", "-") == "Hello from anthropic-peer"
        assert agent.ask("embed") == openai_peer.embedding_dimensions
        anthropic_peer.script(
            ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), ScriptedReply(text="Sunny.")
        )
        assert agent.ask("agent") == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
        # No database driver and no key store in this process, and nothing written where it runs.
        assert agent.ask("modules") == []
        assert sorted(p.name for p in agent_dir.iterdir()) == []

        # A change through the server's API reaches the agent by the change stream.
        changed = sqlite_server.api(
            "PUT", "/config/reasoning", json={"provider_id": "local", "model_name": "local-chat"}
        )
        assert changed.status_code == 200
        assert agent.ask("wait-model", "reasoning", "local-chat", PUSHED_WITHIN) is not None

        # Usage is posted to the server in the background and lands in its usage table.
        assert agent.ask("flush") is True
        deadline = time.monotonic() + 15
        while True:
            report = sqlite_server.api("GET", "/usage", params={"group_by": "user"}).json()
            calls = {group["key"]: group["calls"] for group in report["groups"]}
            if (calls.get("u-42") and calls.get("(none)", 0) >= 3) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert calls.get("u-42") == 1 and calls.get("(none)", 0) >= 3, report
    finally:
        errors = agent.stop()
    for key in (OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY):
        assert key not in errors


def test_agents_in_separate_processes_give_each_user_the_same_group_entry_and_variant(
    sqlite_server: ServeProcess, tmp_path: Path, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(sqlite_server, openai_peer, anthropic_peer)
    entry = {
        "provider_id": "local",
        "model_name": "gpt-4o",
        "weight": 50,
        "variants": [{"name": "mini", "provider_id": "local", "model_name": "gpt-4o-mini", "weight": 50}],
    }
    assert sqlite_server.api("PUT", "/groups/team-a/config/reasoning", json=entry).status_code == 200
    users = [f"member-{n}" for n in range(12)]
    for user in users:
        assert sqlite_server.api("PUT", f"/users/{user}/groups", json={"groups": ["team-a"]}).status_code == 200
    # What the server's resolution says each user gets, picked in this process as every path picks it.
    expected = {}
    for user in users:
        payload = sqlite_server.api("GET", "/resolve/reasoning", params={"user_id": user})
        assert payload.status_code == 200 and payload.json()["source"] == "group:team-a"
        expected[user] = ResolvedConfig.model_validate(payload.json()).pick(user).targets[0].model_name
    assert set(expected.values()) == {"gpt-4o", "gpt-4o-mini"}
    token = client_token(sqlite_server)
    agents = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        agents.append(agent_for(sqlite_server.url, token, tmp_path / name))
    try:
        for agent in agents:
            assert {user: agent.ask("model", "reasoning", user) for user in users} == expected
        assert agents[0].ask("model", "reasoning", "outsider") == "gpt-4o"  # the global entry, no variants
    finally:
        for agent in agents:
            agent.stop()


def test_an_agent_keeps_serving_while_the_server_is_down_and_catches_up_when_it_is_back(
    sqlite_server: ServeProcess, agent_dir: Path, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(sqlite_server, openai_peer, anthropic_peer)
    agent = agent_for(sqlite_server.url, client_token(sqlite_server), agent_dir, LLMCONFIG_REQUEST_TIMEOUT="2")
    try:
        assert agent.ask("model", "reasoning", "-") == "gpt-4o"
        sqlite_server.stop()
        # Last known good: the model resolved before, and for a user never seen, the type's global entry.
        assert agent.ask("invoke", "reasoning", "-") == "Hello from openai-peer"
        assert agent.ask("model", "reasoning", "u-new") == "gpt-4o"

        sqlite_server.start()
        changed = sqlite_server.api(
            "PUT", "/config/reasoning", json={"provider_id": "local", "model_name": "local-chat"}
        )
        assert changed.status_code == 200
        assert agent.ask("wait-model", "reasoning", "local-chat", "20") is not None
    finally:
        agent.stop()


def test_a_server_down_at_start_is_a_clear_error_or_the_environment_fallback(
    agent_dir: Path, openai_peer: OpenAIPeer
) -> None:
    # A port that accepts connections and never answers: the request timeout must end the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        agent = agent_for(url, "llmc_whatever", agent_dir, LLMCONFIG_REQUEST_TIMEOUT="1")
        try:
            failed = agent.answer("invoke", "reasoning", "-")
        finally:
            agent.stop()
        assert not failed["ok"] and failed["error"] == "LLMConfigError"
        assert "llmconfig server is unreachable" in failed["message"] and "OPENAI_API_KEY" in failed["message"]

        fallback = agent_for(
            url,
            "llmc_whatever",
            agent_dir,
            LLMCONFIG_REQUEST_TIMEOUT="1",
            OPENAI_API_KEY=OPENAI_PEER_KEY,
            OPENAI_BASE_URL=openai_peer.base_url,
        )
        try:
            assert fallback.ask("invoke", "reasoning", "-") == "Hello from openai-peer"
        finally:
            fallback.stop()


def test_a_wrong_token_and_a_viewer_token_are_refused_with_what_to_do(
    sqlite_server: ServeProcess, agent_dir: Path, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(sqlite_server, openai_peer, anthropic_peer)
    viewer = sqlite_server.api("POST", "/tokens", json={"name": "dash", "role": "viewer"}).json()["token"]
    limited = client_token(sqlite_server, interaction_types=["tools"])
    for token, words in (
        ("llmc_not-a-token", ["refused LLMCONFIG_TOKEN", "--role client"]),
        (viewer, ["client or admin token", "viewer tokens"]),
        (limited, ["only the interaction types tools", "'reasoning'"]),
    ):
        agent = agent_for(sqlite_server.url, token, agent_dir)
        try:
            failed = agent.answer("invoke", "reasoning", "-")
        finally:
            agent.stop()
        assert not failed["ok"] and failed["error"] == "LLMConfigError", failed
        for word in words:
            assert word in failed["message"], failed["message"]


@pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
def test_a_change_through_one_replica_reaches_an_agent_connected_to_another(
    migrated_database_url: str,
    tmp_path: Path,
    agent_dir: Path,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    database_url = migrated_database_url
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    key = {"LLMCONFIG_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
    first = ServeProcess(database_url, tmp_path / "a", **key).start()
    second = ServeProcess(database_url, tmp_path / "b", **key).start()
    try:
        configure(second, openai_peer, anthropic_peer)
        agent = agent_for(first.url, client_token(second), agent_dir)
        try:
            assert agent.ask("invoke", "reasoning", "-") == "Hello from openai-peer"
            changed = second.api("PUT", "/config/reasoning", json={"provider_id": "local", "model_name": "local-chat"})
            assert changed.status_code == 200
            assert agent.ask("wait-model", "reasoning", "local-chat", PUSHED_WITHIN) is not None
            assert agent.ask("model", "reasoning", "u-42") == "gpt-4o-mini"
        finally:
            agent.stop()
    finally:
        first.stop()
        second.stop()
