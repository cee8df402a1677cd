"""End-to-end tests of the ``llmconfig`` command, run as the installed console script in a subprocess.

Tests run on SQLite and on PostgreSQL (the ``database_url`` fixture), against the loopback peers of
tests/peers running in this process. Where a test is about one command, the state before it is arranged
in-process through the services (``direct``, fast); what is under test always goes through the command.
Every start of the command costs a second or more, so independent calls run side by side.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.config.defaults import BUILTIN_DEFAULTS
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.db.migrate import head_revision, upgrade_to_head
from llmconfig.providers.schemas import ProviderCreate
from llmconfig.settings import Settings
from tests.cli_helpers import (
    Cli,
    assert_one_line_error,
    assert_secrets_absent,
    assert_succeeded,
    concurrently,
    stored_bytes,
)
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer

WRONG_KEY = "sk-canary-wrong-key-5e1d9c3a7b"
VALIDATION_KEYS = {"ok", "status", "detail", "latency_ms", "models_discovered"}


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """The command on the test's database (empty: not migrated), master key file in ``tmp_path``."""
    return Cli(database_url=database_url, master_key_file=tmp_path / "llmconfig.key", cwd=tmp_path)


@pytest.fixture
def direct(database_url: str, tmp_path: Path, settings_factory: Callable[..., Settings]) -> Iterator[LLMConfigService]:
    """The services called in-process on the same database and master key as ``cli``, migrated: for arranging."""
    service = LLMConfigService(
        settings_factory(database_url=database_url, master_key_file=tmp_path / "llmconfig.key", cache_ttl=0)
    )
    upgrade_to_head(service.engine)
    try:
        yield service
    finally:
        service.close()


def add_provider(
    direct: LLMConfigService,
    name: str,
    peer: OpenAIPeer | AnthropicPeer,
    *,
    provider_type: str = "custom",
    api_key: str = OPENAI_PEER_KEY,
    validate: bool = True,
) -> None:
    data = ProviderCreate(
        name=name, provider_type=provider_type, api_base_url=peer.root_url, api_key=SecretStr(api_key)
    )
    direct.providers.add(data, validate=validate)


def set_config(direct: LLMConfigService, interaction_type: str, provider: str, model: str) -> None:
    direct.config.set_global(interaction_type, ConfigUpdate(provider_id=provider, model_name=model), actor="test")


def providers_as_json(direct: LLMConfigService) -> list[dict[str, object]]:
    return [provider.model_dump(mode="json") for provider in direct.providers.list()]


# ------------------------------------------------------------------------------------------ the user story

STORY_SCRIPT = """
import json
import llmconfig
print(llmconfig.get_llm("reasoning").invoke("hi").content)
print(llmconfig.get_llm("tools").invoke("hi").content)
print(json.dumps(llmconfig.get_embeddings().embed_query("x")))
"""


def test_user_story_from_the_cli_alone_and_the_key_appears_nowhere(
    cli: Cli, database_url: str, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    # The keys sit in the environment of every command, as they would in an operator's shell.
    cli.env.update({"MY_KEY": OPENAI_PEER_KEY, "CLAUDE_KEY": ANTHROPIC_PEER_KEY})

    migrate = cli.run("migrate")
    assert f"upgraded from empty to {head_revision()}" in migrate.stdout

    add_local, add_claude = concurrently(
        partial(
            cli.run, "providers", "add", "local", "--type", "custom",
            "--base-url", openai_peer.root_url, "--api-key-env", "MY_KEY",
        ),
        partial(
            cli.run, "providers", "add", "claude", "--type", "anthropic",
            "--base-url", anthropic_peer.root_url, "--api-key-env", "CLAUDE_KEY", "--json",
        ),
    )  # fmt: skip
    assert f"Added provider local (custom, {openai_peer.base_url})" in add_local.stdout
    assert "✓ local: 4 models available" in add_local.stdout
    claude = add_claude.json()
    assert claude["validation"]["ok"] is True
    assert claude["validation"]["models_discovered"] == len(anthropic_peer.models)
    assert claude["provider"]["validation_status"] == "ok"
    assert claude["provider"]["api_key_hint"] == ANTHROPIC_PEER_KEY[-4:]

    models, models_json, *sets = cli.many(
        ["providers", "models", "local", "--refresh"],
        ["providers", "models", "local", "--json"],
        ["config", "set", "reasoning", "--provider", "local", "--model", "local-chat", "--temperature", "0.2"],
        ["config", "set", "tools", "--provider", "claude", "--model", "claude-haiku-4-5"],
        ["config", "set", "embeddings", "--provider", "local", "--model", "text-embedding-3-small"],
    )
    for result in (models, models_json, *sets):
        assert_succeeded(result)
    for model in openai_peer.models:
        assert model in models.stdout
    catalog = {entry["model_name"]: entry["kind"] for entry in models_json.json()}
    assert catalog == {
        "gpt-4o": "chat",
        "gpt-4o-mini": "chat",
        "local-chat": "chat",
        "text-embedding-3-small": "embeddings",
    }
    assert "reasoning: local / local-chat" in sets[0].stdout
    assert "tools: claude / claude-haiku-4-5" in sets[1].stdout

    app = cli.python(STORY_SCRIPT)
    reasoning_reply, tools_reply, vector = app.stdout.splitlines()
    assert reasoning_reply == "Hello from openai-peer"
    assert tools_reply == "Hello from anthropic-peer"
    assert json.loads(vector) == pytest.approx(openai_peer.embedding_for("x"))
    chat = openai_peer.requests_to("/v1/chat/completions")[-1]
    assert (chat.json["model"], chat.json["temperature"]) == ("local-chat", 0.2)
    assert chat.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"  # the key, decrypted
    assert anthropic_peer.requests_to("/v1/messages")[-1].json["model"] == "claude-haiku-4-5"
    assert openai_peer.requests_to("/v1/embeddings")[-1].json["model"] == "text-embedding-3-small"

    show, listing, listing_json, config_json = cli.many(
        ["providers", "show", "local"],
        ["providers", "list"],
        ["providers", "list", "--json"],
        ["config", "show", "--json"],
    )
    for result in (show, listing, listing_json, config_json):
        assert_succeeded(result)
    assert f"api_key_hint       {OPENAI_PEER_KEY[-4:]}" in show.stdout
    assert f"…{ANTHROPIC_PEER_KEY[-4:]}" in listing.stdout
    assert {p["name"]: p["has_api_key"] for p in listing_json.json()} == {"local": True, "claude": True}
    assert set(config_json.json()) == {"reasoning", "tools", "embeddings"}

    # The plaintext keys: in no output of any command above, and nowhere in the database.
    keys = (OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY)
    assert_secrets_absent(cli.results, keys)
    stored = stored_bytes(database_url)
    assert b"local:v1:" in stored  # the encrypted references are there, so the search saw the rows
    for key in keys:
        assert key.encode() not in stored


# ------------------------------------------------------------------------------------------ bad input


@dataclass
class BadInput:
    id: str
    argv: Sequence[str]
    words: Sequence[str]  # what the error line must say
    env: Mapping[str, str] = field(default_factory=dict)


def add_argv(name: str, url: str, *, provider_type: str = "custom", key_env: str = "MY_KEY") -> list[str]:
    return ["providers", "add", name, "--type", provider_type, "--base-url", url, "--api-key-env", key_env]


def set_argv(interaction_type: str, model: str, *extra: str) -> list[str]:
    return ["config", "set", interaction_type, "--provider", "local", "--model", model, *extra]


def assert_all_refused(cli: Cli, cases: Sequence[BadInput]) -> None:
    """Run the cases side by side; each must end in a one-line error saying what is wrong (all reported)."""
    results = concurrently(*(partial(cli.run, *case.argv, env=case.env, expect=None) for case in cases))
    failures = []
    for case, result in zip(cases, results, strict=True):
        try:
            assert_one_line_error(result, *case.words)
        except AssertionError as exc:
            failures.append(f"[{case.id}] {exc}")
    assert not failures, "\n\n".join(failures)


def test_input_conflicting_with_stored_state_gives_one_line_error_and_writes_nothing(
    cli: Cli, direct: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    add_provider(direct, "local", openai_peer)
    providers_before = providers_as_json(direct)
    cli.env["MY_KEY"] = OPENAI_PEER_KEY

    assert_all_refused(
        cli,
        [
            BadInput("duplicate name", add_argv("local", openai_peer.root_url), ["'local'", "already exists"]),
            BadInput("unknown type", set_argv("thinking", "local-chat"), ["Unknown interaction type", "'thinking'"]),
            BadInput("model not in catalog", set_argv("reasoning", "gpt-5"), ["does not offer", "'gpt-5'"]),
            BadInput(
                "temperature 3",
                set_argv("reasoning", "local-chat", "--temperature", "3"),
                ["temperature", "less than or equal to 2"],
            ),
        ],
    )

    assert cli.run("providers", "list", "--json").json() == providers_before
    assert direct.config.get_global() == {}
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY])


# What is checked here is the input and the provider's answer, not the database: SQLite is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_provider_gives_one_line_error_and_adds_nothing(
    cli: Cli, direct: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    # `direct` only migrates the database here.
    cli.env.update({"MY_KEY": OPENAI_PEER_KEY, "WRONG_KEY": WRONG_KEY})
    good_url = openai_peer.root_url
    with ExitStack() as stack:
        hanging, html, garbage = (stack.enter_context(OpenAIPeer(api_key=OPENAI_PEER_KEY)) for _ in range(3))
        hanging.behaviour, html.behaviour, garbage.behaviour = "hang", "html", "garbage"
        # Answers normally after 5 s: within the default timeout (10 s) the provider would be added.
        hanging.hang_seconds = 5
        closed = f"127.0.0.1:{free_tcp_port()}"
        cases = [
            BadInput("base URL not a URL", add_argv("b", "not-a-url"), ["must be an absolute http"]),
            BadInput("base URL with a space", add_argv("b2", "http://a b/v1"), ["must not contain spaces"]),
            BadInput("base URL ftp", add_argv("c", "ftp://x"), ["must be an absolute http"]),
            BadInput("key variable unset", add_argv("d", good_url, key_env="NO_SUCH_VAR"), ["NO_SUCH_VAR", "not set"]),
            BadInput(
                "provider hangs",
                add_argv("e", hanging.root_url),
                ["did not answer", "LLMCONFIG_REQUEST_TIMEOUT"],
                env={"LLMCONFIG_REQUEST_TIMEOUT": "1"},
            ),
            BadInput("provider answers HTML", add_argv("f", html.root_url), ["text/html", "not JSON"]),
            BadInput("provider answers garbage", add_argv("g", garbage.root_url), ["not JSON"]),
            BadInput("closed port", add_argv("h", f"http://{closed}"), ["Cannot connect", closed]),
            BadInput("wrong API key", add_argv("i", good_url, key_env="WRONG_KEY"), ["rejected the API key"]),
        ]
        assert_all_refused(cli, cases)

    assert cli.run("providers", "list", "--json").json() == []
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY, WRONG_KEY])


# ------------------------------------------------------------------------------------------ providers


def test_providers_validate_exits_0_on_success_and_1_with_the_status_on_failure(
    cli: Cli, direct: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    add_provider(direct, "good", openai_peer)
    add_provider(direct, "bad", openai_peer, api_key=WRONG_KEY, validate=False)

    # `providers validate --json` on success: see test_every_command_prints_valid_json_with_json.
    good, bad, bad_json = cli.many(
        ["providers", "validate", "good"], ["providers", "validate", "bad"], ["providers", "validate", "bad", "--json"]
    )
    assert_succeeded(good)
    assert "✓ good: 4 models available" in good.stdout

    for result in (bad, bad_json):
        assert result.returncode == 1, str(result)
        assert "Traceback" not in result.output
    assert "✗ bad: unauthorized: " in bad.stdout
    assert "rejected the API key" in bad.stdout
    answer = bad_json.json()
    assert set(answer) == VALIDATION_KEYS
    assert (answer["ok"], answer["status"], answer["models_discovered"]) == (False, "unauthorized", 0)

    assert direct.providers.get("good").validation_status == "ok"
    assert direct.providers.get("bad").validation_status == "failed"
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY, WRONG_KEY])


def test_providers_remove_is_refused_while_in_use_and_works_once_unused(
    cli: Cli, direct: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    add_provider(direct, "local", openai_peer)
    add_provider(direct, "other", openai_peer)
    set_config(direct, "reasoning", "local", "local-chat")

    refused = cli.run("providers", "remove", "local", expect=None)
    assert_one_line_error(refused, "'local'", "in use", "reasoning")
    assert {p.name for p in direct.providers.list()} == {"local", "other"}

    moved = cli.run("config", "set", "reasoning", "--provider", "other", "--model", "gpt-4o", "--json")
    assert (moved.json()["provider_name"], moved.json()["model_name"]) == ("other", "gpt-4o")
    removed = cli.run("providers", "remove", "local", "--json")
    assert removed.json() == {"removed": "local"}
    assert [p.name for p in direct.providers.list()] == ["other"]


# ------------------------------------------------------------------------------------------ seed


def test_seed_adds_openai_with_the_defaults_and_a_second_seed_changes_nothing(
    cli: Cli, openai_peer: OpenAIPeer
) -> None:
    openai_env = {"OPENAI_API_KEY": OPENAI_PEER_KEY, "OPENAI_BASE_URL": openai_peer.base_url}
    cli.run("migrate")

    first = cli.run("seed", env=openai_env)
    assert "Provider openai: added" in first.stdout
    assert "✓ openai: 4 models available" in first.stdout
    assert "Configured: reasoning, tools, subagents, planning, embeddings" in first.stdout

    config_before, providers_before, no_key = cli.many(
        ["config", "show", "--json"], ["providers", "list", "--json"], ["seed"]
    )
    assert_one_line_error(no_key, "OPENAI_API_KEY is not set")
    config = config_before.json()
    assert {name: (e["provider_name"], e["model_name"], e["temperature"]) for name, e in config.items()} == {
        name: ("openai", default.model_name, default.temperature) for name, default in BUILTIN_DEFAULTS.items()
    }
    (provider,) = providers_before.json()
    assert (provider["name"], provider["provider_type"], provider["api_base_url"]) == (
        "openai",
        "openai",
        openai_peer.base_url,
    )
    assert (provider["validation_status"], provider["has_api_key"]) == ("ok", True)

    second = cli.run("seed", "--json", env=openai_env).json()
    assert (second["created"], second["configured"], second["validation"]) == (False, [], None)
    config_after, providers_after = cli.many(["config", "show", "--json"], ["providers", "list", "--json"])
    assert config_after.stdout == config_before.stdout
    assert providers_after.stdout == providers_before.stdout
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY])


# ------------------------------------------------------------------------------------------ --json everywhere


def test_every_command_prints_valid_json_with_json(cli: Cli, direct: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    add_provider(direct, "local", openai_peer)
    set_config(direct, "reasoning", "local", "local-chat")

    commands = {
        "providers list": ["providers", "list", "--json"],
        "providers show": ["providers", "show", "local", "--json"],
        "providers models": ["providers", "models", "local", "--json"],
        "providers validate": ["providers", "validate", "local", "--json"],
        "config show": ["config", "show", "--json"],
        "config summary": ["config", "summary", "--json"],
        "config validate": ["config", "validate", "--json"],
        "config types": ["config", "types", "--json"],
        "migrate": ["migrate", "--json"],
    }
    results = dict(zip(commands, cli.many(*commands.values()), strict=True))
    for result in results.values():
        assert_succeeded(result)
    out = {name: result.json() for name, result in results.items()}

    assert [p["name"] for p in out["providers list"]] == ["local"]
    # The validations running beside them move these (validating bumps updated_at too).
    volatile = {"validated_at", "updated_at"}
    assert {k: v for k, v in out["providers show"].items() if k not in volatile} == {
        k: v for k, v in out["providers list"][0].items() if k not in volatile
    }
    assert {m["model_name"] for m in out["providers models"]} == set(openai_peer.models)
    validation = out["providers validate"]
    assert set(validation) == VALIDATION_KEYS
    assert (validation["ok"], validation["status"], validation["models_discovered"]) == (True, "ok", 4)
    assert validation["latency_ms"] >= 0
    assert out["config show"]["reasoning"]["model_name"] == "local-chat"
    assert "reasoning: local / local-chat" in out["config summary"]["summary"]
    assert out["config validate"] == {
        "ok": True,
        "results": {"reasoning": {"ok": True, "status": "ok", "detail": "local / local-chat"}},
    }
    assert [t["name"] for t in out["config types"]] == list(BUILTIN_DEFAULTS)
    assert out["migrate"] == {"from": head_revision(), "to": head_revision()}


# ------------------------------------------------------------------------------------------ set-up mistakes


def test_commands_before_migrate_tell_the_user_to_run_migrate(cli: Cli) -> None:
    result = cli.run("providers", "list", expect=1)
    assert "Traceback" not in result.output
    # Not one line: the master key file is created (with a warning) before the schema is checked.
    assert result.stderr.splitlines()[-1] == (
        "error: The database schema is missing or out of date; run `llmconfig migrate` first"
    )


def test_wrong_master_key_fails_with_a_master_key_message_and_sends_nothing(
    cli: Cli, direct: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    add_provider(direct, "local", openai_peer)
    set_config(direct, "reasoning", "local", "local-chat")
    other_key = {"LLMCONFIG_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
    script = (
        "import sys, llmconfig\n"
        "try:\n"
        "    llmconfig.get_llm('reasoning').invoke('hi')\n"
        "except llmconfig.LLMConfigError as exc:\n"
        "    sys.exit(f'{type(exc).__name__}: {exc}')\n"
    )

    app, validate = concurrently(
        partial(cli.python, script, env=other_key, expect=1),
        partial(cli.run, "providers", "validate", "local", env=other_key, expect=None),
    )
    assert app.stderr.startswith("SecretDecryptionError: "), str(app)
    assert "master key" in app.stderr
    assert_one_line_error(validate, "master key")
    assert openai_peer.requests_to("/v1/chat/completions") == []
    assert all(request.headers.get("authorization") == f"Bearer {OPENAI_PEER_KEY}" for request in openai_peer.requests)
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY])
