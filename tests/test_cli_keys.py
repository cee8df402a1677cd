"""``llmconfig keys rotate | check`` and ``llmconfig secrets migrate``, run as the installed command.

SQLite only: the database-level behaviour on PostgreSQL is covered in tests/secrets/. The state before a
command is arranged in-process (``direct``); what is under test goes through the command.
"""

from __future__ import annotations

import base64
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from llmconfig import LLMConfigService
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.db.engine import transaction
from llmconfig.db.migrate import upgrade_to_head
from llmconfig.db.models import Provider, ProviderKey
from llmconfig.errors import SecretDecryptionError
from llmconfig.providers.schemas import ProviderCreate
from llmconfig.secrets import LocalSecretBackend
from llmconfig.secrets.local import read_key_file
from llmconfig.settings import Settings
from tests.cli_helpers import (
    Cli,
    assert_one_line_error,
    assert_secrets_absent,
    assert_succeeded,
    concurrently,
    stored_bytes,
)
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer

GET_LLM = "import llmconfig; print(llmconfig.get_llm('reasoning').invoke('hi').content)"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url=sqlite_url, master_key_file=tmp_path / "llmconfig.key", cwd=tmp_path)


def arrange(settings: Settings, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> LLMConfigService:
    service = LLMConfigService(settings)
    upgrade_to_head(service.engine)
    for name, provider_type, peer, key in (
        ("local", "custom", openai_peer, OPENAI_PEER_KEY),
        ("claude", "anthropic", anthropic_peer, ANTHROPIC_PEER_KEY),
    ):
        service.providers.add(
            ProviderCreate(name=name, provider_type=provider_type, api_base_url=peer.root_url, api_key=SecretStr(key))
        )
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="local-chat"), actor="t")
    return service


@pytest.fixture
def direct(
    sqlite_url: str,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> Iterator[LLMConfigService]:
    """Two providers on the command's database and key file, reasoning configured."""
    settings = settings_factory(database_url=sqlite_url, master_key_file=tmp_path / "llmconfig.key", cache_ttl=0)
    service = arrange(settings, openai_peer, anthropic_peer)
    try:
        yield service
    finally:
        service.close()


def references(service: LLMConfigService) -> dict[str, tuple[str, str]]:
    with transaction(service.sessions) as session:
        return {p.name: (p.id, p.keys[0].secret_ref if p.keys else "") for p in session.scalars(select(Provider))}


def test_keys_rotate_then_check_and_a_fresh_process_answers_with_the_new_key(
    cli: Cli, direct: LLMConfigService, tmp_path: Path
) -> None:
    key_file = tmp_path / "llmconfig.key"
    old_key = read_key_file(key_file)

    rotated = cli.run("keys", "rotate", "--json")

    report = rotated.json()
    assert report["reencrypted"] == 2 and sorted(report["providers"]) == ["claude", "local"]
    assert report["new_key_file"] == str(key_file) and report["mode"] == "key_file"
    new_key = read_key_file(key_file)
    assert new_key != old_key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for provider_id, ref in references(direct).values():
        with pytest.raises(SecretDecryptionError):
            LocalSecretBackend(old_key).load(ref, owner=provider_id)
    # The process that was running all along follows the rotated key file.
    assert direct.providers.validate("local").ok and direct.providers.validate("claude").ok

    only_new_key = {"LLMCONFIG_MASTER_KEY": b64(new_key), "LLMCONFIG_MASTER_KEY_FILE": str(tmp_path / "none.key")}
    checked, answer = concurrently(partial(cli.run, "keys", "check"), partial(cli.python, GET_LLM, env=only_new_key))
    assert "All 2 stored API key(s) can be read" in checked.stdout
    assert answer.stdout.strip() == "Hello from openai-peer"

    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY, b64(old_key), b64(new_key)])
    data = stored_bytes(direct.settings.database_url)  # the SQLite file, -wal and -shm
    for secret in (OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY, b64(old_key), b64(new_key)):
        assert secret.encode() not in data


def test_keys_check_names_the_provider_that_cannot_be_decrypted_and_rotate_refuses(
    cli: Cli, direct: LLMConfigService, tmp_path: Path
) -> None:
    claude_id = references(direct)["claude"][0]
    foreign = LocalSecretBackend(os.urandom(32)).store(owner=claude_id, value=ANTHROPIC_PEER_KEY)
    with transaction(direct.sessions, write=True) as session:
        session.execute(update(ProviderKey).where(ProviderKey.provider_id == claude_id).values(secret_ref=foreign))
    key_before = (tmp_path / "llmconfig.key").read_bytes()

    text, as_json, rotate = cli.many(("keys", "check"), ("keys", "check", "--json"), ("keys", "rotate"))

    assert text.returncode == 1 and "Traceback" not in text.output
    (line,) = [line for line in text.stdout.splitlines() if "claude" in line]
    assert claude_id in line and "cannot be decrypted" in line
    assert "1 of 2 stored API key(s) cannot be read" in text.stdout
    assert as_json.returncode == 1
    report = as_json.json()
    assert report["ok"] is False and report["failed"] == 1
    assert [(r["provider_name"], r["provider_id"], r["ok"]) for r in report["results"]] == [
        ("claude", claude_id, False),
        ("local", references(direct)["local"][0], True),
    ]
    assert_one_line_error(rotate, "claude", claude_id, "nothing was changed")
    assert (tmp_path / "llmconfig.key").read_bytes() == key_before
    assert references(direct)["claude"][1] == foreign
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY])


def test_keys_rotate_of_an_environment_key_writes_the_new_key_file_and_prints_the_steps(
    cli: Cli,
    sqlite_url: str,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    old_key = os.urandom(32)
    service = arrange(
        settings_factory(database_url=sqlite_url, master_key=b64(old_key), cache_ttl=0), openai_peer, anthropic_peer
    )
    service.close()
    env = {"LLMCONFIG_MASTER_KEY": b64(old_key)}
    new_file = tmp_path / "rotated" / "master.key"

    # The refused call stops at its settings, before touching the database: safe to run alongside.
    refused, rotated = cli.many(("keys", "rotate"), ("keys", "rotate", "--new-key-file", str(new_file)), env=env)
    assert_one_line_error(refused, "--new-key-file")

    assert_succeeded(rotated)
    assert "Re-encrypted 2 API key(s)" in rotated.stdout
    assert str(new_file) in rotated.stdout and "LLMCONFIG_MASTER_KEY_PREVIOUS" in rotated.stdout
    assert stat.S_IMODE(new_file.stat().st_mode) == 0o600
    new_key = read_key_file(new_file)
    assert not (tmp_path / "llmconfig.key").exists()  # the key file was never involved
    ok, old_only = concurrently(
        partial(cli.run, "keys", "check", "--json", env={"LLMCONFIG_MASTER_KEY": b64(new_key)}),
        partial(cli.run, "keys", "check", "--json", env=env, expect=1),
    )
    assert ok.json()["ok"] is True
    assert old_only.json()["failed"] == 2
    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY, b64(old_key), b64(new_key)])


def test_secrets_migrate_command_moves_keys_to_aws_once(cli: Cli, direct: LLMConfigService, moto_endpoint: str) -> None:
    env = {"LLMCONFIG_AWS_ENDPOINT_URL": moto_endpoint, "LLMCONFIG_AWS_SECRET_PREFIX": f"cli-{uuid.uuid4().hex[:8]}/"}

    moved = cli.run("secrets", "migrate", "--to", "aws", env=env)
    assert_succeeded(moved)
    assert "Moved 2 API key(s) to the 'aws' backend" in moved.stdout
    assert "LLMCONFIG_SECRET_BACKEND=aws" in moved.stdout
    assert all(ref.startswith("aws:") for _, ref in references(direct).values())
    on_aws = {**env, "LLMCONFIG_SECRET_BACKEND": "aws"}
    again, answer = concurrently(
        partial(cli.run, "secrets", "migrate", "--to", "aws", "--json", env=on_aws),
        partial(cli.python, GET_LLM, env=on_aws),
    )
    assert again.json()["migrated"] == [] and again.json()["unchanged"] == 2
    assert answer.stdout.strip() == "Hello from openai-peer"

    assert_secrets_absent(cli.results, [OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY])
