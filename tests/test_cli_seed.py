"""``llmconfig seed`` against a server that lacks some default models: it says why and what to run instead.

Run as the installed command in a subprocess against the loopback OpenAI peer, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import Cli, assert_secrets_absent, assert_succeeded
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

# What the server offers: gpt-4o, but not gpt-4o-mini (tools, subagents) nor text-embedding-3-small.
OFFERED = ("gpt-4o", "nomic-embed-text")


@pytest.fixture
def partial_peer() -> Iterator[OpenAIPeer]:
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, models=OFFERED) as peer:
        yield peer


@pytest.fixture
def cli(database_url: str, tmp_path: Path, partial_peer: OpenAIPeer) -> Cli:
    cli = Cli(database_url=database_url, master_key_file=tmp_path / "llmconfig.key", cwd=tmp_path)
    cli.env.update({"OPENAI_API_KEY": OPENAI_PEER_KEY, "OPENAI_BASE_URL": partial_peer.base_url})
    cli.run("migrate")
    return cli


def test_seed_names_each_missing_default_what_is_offered_and_the_command_to_run(cli: Cli) -> None:
    seeded = cli.run("seed")
    assert_succeeded(seeded)

    assert "Configured: reasoning, planning" in seeded.stdout
    for interaction_type in ("tools", "subagents"):
        assert (
            f"Not configured {interaction_type}: provider 'openai' does not offer the default model 'gpt-4o-mini'; "
            "it offers chat models: gpt-4o"
        ) in seeded.stdout, str(seeded)
        assert (
            f"to configure it: llmconfig config set {interaction_type} --provider openai --model gpt-4o"
        ) in seeded.stdout, str(seeded)
    assert (
        "Not configured embeddings: provider 'openai' does not offer the default model 'text-embedding-3-small'; "
        "it offers embeddings models: nomic-embed-text"
    ) in seeded.stdout, str(seeded)
    assert (
        "to configure it: llmconfig config set embeddings --provider openai --model nomic-embed-text"
    ) in seeded.stdout, str(seeded)
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY])


def test_seed_json_lists_skipped_types_apart_from_kept_ones_and_the_suggested_command_works(cli: Cli) -> None:
    first = cli.run("seed", "--json").json()
    assert first["configured"] == ["reasoning", "planning"]
    assert first["kept"] == []
    assert first["skipped"] == [
        {
            "interaction_type": name,
            "kind": kind,
            "reason": "not_offered",
            "wanted_model": wanted,
            "offered_models": [offered],
            "suggested_command": f"llmconfig config set {name} --provider openai --model {offered}",
            "detail": f"provider 'openai' does not offer the default model {wanted!r}; "
            f"it offers {kind} models: {offered}",
        }
        for name, kind, wanted, offered in [
            ("tools", "chat", "gpt-4o-mini", "gpt-4o"),
            ("subagents", "chat", "gpt-4o-mini", "gpt-4o"),
            ("embeddings", "embeddings", "text-embedding-3-small", "nomic-embed-text"),
        ]
    ]

    # The operator runs the suggested command as printed; the next seed keeps that type and still skips the rest.
    tools = next(skip for skip in first["skipped"] if skip["interaction_type"] == "tools")
    argv = shlex.split(tools["suggested_command"])
    assert argv[0] == "llmconfig"
    assert_succeeded(cli.run(*argv[1:]))
    second = cli.run("seed", "--json").json()
    assert (second["created"], second["configured"]) == (False, [])
    assert second["kept"] == ["reasoning", "tools", "planning"]
    assert [skip["interaction_type"] for skip in second["skipped"]] == ["subagents", "embeddings"]
    answer = cli.python("import llmconfig; print(llmconfig.get_llm('tools').invoke('hi').content)")
    assert answer.stdout.strip() == "Hello from openai-peer"
