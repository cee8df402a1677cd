"""Master key rotation, LLMCONFIG_MASTER_KEY_PREVIOUS and the secret check, on SQLite and PostgreSQL.

Everything is real: the databases, the loopback OpenAI/Anthropic peers answering with the decrypted keys,
and the key files on disk.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from llmconfig import LLMConfigService
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.db.engine import transaction
from llmconfig.db.models import Provider, ProviderKey
from llmconfig.errors import SecretDecryptionError, SettingsError
from llmconfig.providers import ProviderUpdate
from llmconfig.providers.schemas import ProviderKeyCreate
from llmconfig.secrets import LocalSecretBackend, make_secret_backend
from llmconfig.secrets.local import pending_key_file, previous_key_file, read_key_file, write_key_file
from llmconfig.secrets.maintenance import check_secrets, reencrypt_local_secrets, rotate_master_key
from llmconfig.settings import Settings
from tests.cli_helpers import stored_bytes
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, add_peer_providers
from tests.peers import AnthropicPeer, OpenAIPeer

OWNER = "5b0c3c2e-8d7e-4c2b-9a55-0c7b3f0e1a11"
STRAGGLER_KEY = "sk-canary-straggler-9d2c4e6a8b"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def configure(service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> None:
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="local-chat"), actor="test")


def references(service: LLMConfigService) -> dict[str, tuple[str, str]]:
    """Provider name -> (id, secret reference of its first key)."""
    with transaction(service.sessions) as session:
        return {p.name: (p.id, p.keys[0].secret_ref) for p in session.scalars(select(Provider)) if p.keys}


def assert_key_decrypts_nothing(key: bytes, refs: dict[str, tuple[str, str]]) -> None:
    old = LocalSecretBackend(key)
    for provider_id, ref in refs.values():
        with pytest.raises(SecretDecryptionError):
            old.load(ref, owner=provider_id)


def assert_no_plaintext(service: LLMConfigService, *secrets: bytes) -> None:
    data = stored_bytes(service.settings.database_url)
    for secret in (OPENAI_PEER_KEY.encode(), ANTHROPIC_PEER_KEY.encode(), *secrets):
        assert secret not in data


def test_rotation_of_the_key_file_reencrypts_everything_and_the_old_key_decrypts_nothing(
    service: LLMConfigService,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    configure(service, openai_peer, anthropic_peer)
    assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
    key_file = service.settings.master_key_file
    old_key = read_key_file(key_file)
    before = references(service)
    revision = service.resolver.revision()

    result = rotate_master_key(service.sessions, service.settings, actor="test")

    assert result.mode == "key_file"
    assert result.reencrypted == 2 and sorted(result.providers) == ["claude", "local"]
    new_key = read_key_file(key_file)
    assert new_key != old_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert read_key_file(previous_key_file(key_file)) == old_key
    assert stat.S_IMODE(previous_key_file(key_file).stat().st_mode) == 0o600
    assert not pending_key_file(key_file).exists()
    assert result.new_key_file == str(key_file)
    assert b64(new_key) not in result.model_dump_json()
    after = references(service)
    assert all(after[name][1] != before[name][1] for name in before)
    assert_key_decrypts_nothing(old_key, after)
    assert service.resolver.revision() > revision

    # The running service picks up the rotated key file by itself; every provider still validates.
    assert service.providers.validate("local").ok
    assert service.providers.validate("claude").ok
    assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
    # A fresh process given only the new key answers from the peer.
    fresh = LLMConfigService(
        settings_factory(
            database_url=service.settings.database_url,
            master_key=b64(new_key),
            master_key_file=tmp_path / "absent.key",
            cache_ttl=0,
        )
    )
    try:
        assert fresh.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
        assert fresh.providers.validate("claude").ok
    finally:
        fresh.close()
    assert not (tmp_path / "absent.key").exists()

    entry = service.audit.entries(limit=1)[0]
    assert entry.action == "secrets.rotate_master_key" and entry.actor == "test"
    assert entry.after is not None and sorted(entry.after["providers"]) == ["claude", "local"]
    assert_no_plaintext(service, b64(old_key).encode(), b64(new_key).encode())


def test_rotation_aborts_before_commit_naming_the_provider_whose_key_cannot_be_decrypted(
    service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(service, openai_peer, anthropic_peer)
    claude_id = references(service)["claude"][0]
    foreign = LocalSecretBackend(os.urandom(32)).store(owner=claude_id, value=ANTHROPIC_PEER_KEY)
    with transaction(service.sessions, write=True) as session:
        session.execute(update(ProviderKey).where(ProviderKey.provider_id == claude_id).values(secret_ref=foreign))
    key_file = service.settings.master_key_file
    key_before = key_file.read_bytes()
    before = references(service)
    revision = service.resolver.revision()

    with pytest.raises(SecretDecryptionError) as caught:
        rotate_master_key(service.sessions, service.settings, actor="test")

    message = str(caught.value)
    assert "'claude'" in message and claude_id in message and "nothing was changed" in message
    assert ANTHROPIC_PEER_KEY not in message
    assert references(service) == before
    assert service.resolver.revision() == revision
    assert key_file.read_bytes() == key_before
    assert not pending_key_file(key_file).exists() and not previous_key_file(key_file).exists()
    assert service.providers.validate("local").ok

    report = check_secrets(service.sessions, service.secrets)
    assert not report.ok and report.failed == 1
    (failed,) = [r for r in report.results if not r.ok]
    assert (failed.provider_name, failed.provider_id, failed.status) == ("claude", claude_id, "undecryptable")
    assert "master key" in failed.detail


def test_an_interrupted_rotation_stays_readable_and_the_next_one_completes_it(
    service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(service, openai_peer, anthropic_peer)
    key_file = service.settings.master_key_file
    first_key = read_key_file(key_file)
    # A rotation that wrote <file>.new and committed, then died before renaming it over the key file.
    pending_key = os.urandom(32)
    assert write_key_file(pending_key_file(key_file), pending_key)
    reencrypt_local_secrets(
        service.sessions,
        reader=service.secrets,
        writer=LocalSecretBackend(pending_key),
        actor="test",
        mode="key_file",
        new_key_file=str(key_file),
    )
    # In that window, a process reading the key file still decrypts everything (through <file>.new).
    assert read_key_file(key_file) == first_key
    fresh = make_secret_backend(service.settings)
    assert {fresh.load(ref, owner=pid) for pid, ref in references(service).values()} == {
        OPENAI_PEER_KEY,
        ANTHROPIC_PEER_KEY,
    }
    assert service.providers.validate("local").ok and service.providers.validate("claude").ok

    result = rotate_master_key(service.sessions, service.settings, actor="test")

    assert result.completed_interrupted_rotation
    assert read_key_file(previous_key_file(key_file)) == pending_key
    refs = references(service)
    assert_key_decrypts_nothing(first_key, refs)
    assert_key_decrypts_nothing(pending_key, refs)
    assert service.providers.validate("claude").ok

    # A rotation that died before committing leaves a <file>.new that nothing is encrypted with: discarded.
    assert write_key_file(pending_key_file(key_file), os.urandom(32))
    again = rotate_master_key(service.sessions, service.settings, actor="test")
    assert not again.completed_interrupted_rotation
    assert service.providers.validate("local").ok


def test_rotation_of_an_environment_key_and_a_replica_rolling_out_with_the_previous_key(
    migrated_database_url: str,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
    tmp_path: Path,
) -> None:
    old_key = os.urandom(32)
    settings = settings_factory(database_url=migrated_database_url, master_key=b64(old_key), cache_ttl=0)
    service = LLMConfigService(settings)
    new_file = tmp_path / "keys" / "new.key"
    try:
        configure(service, openai_peer, anthropic_peer)
        with pytest.raises(SettingsError, match="--new-key-file"):
            rotate_master_key(service.sessions, settings, actor="test")

        result = rotate_master_key(service.sessions, settings, new_key_file=new_file, actor="test")

        assert result.mode == "environment" and result.reencrypted == 2
        assert stat.S_IMODE(new_file.stat().st_mode) == 0o600
        new_key = read_key_file(new_file)
        steps = " ".join(result.next_steps)
        assert "LLMCONFIG_MASTER_KEY_PREVIOUS" in steps and str(new_file) in steps
        assert b64(new_key) not in result.model_dump_json()
        assert_key_decrypts_nothing(old_key, references(service))
        # A process not yet restarted (old key only) changes a key meanwhile: written under the old key.
        service.providers.update("claude", ProviderUpdate(api_key=SecretStr(STRAGGLER_KEY)), actor="straggler")
    finally:
        service.close()

    replica = LLMConfigService(
        settings_factory(
            database_url=migrated_database_url,
            master_key=b64(new_key),
            master_key_previous=b64(old_key),
            cache_ttl=0,
        )
    )
    try:
        # Reads the re-encrypted reference (new key) and the straggler's (previous key) ...
        assert replica.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
        assert replica.providers.validate("local").ok
        refs = references(replica)
        assert replica.secrets.load(refs["claude"][1], owner=refs["claude"][0]) == STRAGGLER_KEY
        report = check_secrets(replica.sessions, replica.secrets)
        assert report.ok
        assert {r.provider_name: r.status for r in report.results} == {"claude": "old_key", "local": "ok"}
        # ... and encrypts only with the new key.
        written = replica.secrets.store(owner=OWNER, value="x")
        assert LocalSecretBackend(new_key).load(written, owner=OWNER) == "x"
        with pytest.raises(SecretDecryptionError):
            LocalSecretBackend(old_key).load(written, owner=OWNER)
    finally:
        replica.close()

    without_previous = LLMConfigService(
        settings_factory(database_url=migrated_database_url, master_key=b64(new_key), cache_ttl=0)
    )
    try:
        assert without_previous.providers.validate("local").ok
        with pytest.raises(SecretDecryptionError) as caught:
            without_previous.providers.validate("claude")
        message = str(caught.value)
        assert "'claude'" in message and "cannot be decrypted" in message
        assert "LLMCONFIG_MASTER_KEY_PREVIOUS" in message
        report = check_secrets(without_previous.sessions, without_previous.secrets)
        assert [r.provider_name for r in report.results if not r.ok] == ["claude"]
    finally:
        without_previous.close()


def test_previous_key_is_read_from_the_environment(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    old_ref = LocalSecretBackend(old_key).store(owner=OWNER, value="old")
    new_ref = LocalSecretBackend(new_key).store(owner=OWNER, value="new")
    settings_factory()  # clears LLMCONFIG_* of the developer's shell
    monkeypatch.setenv("LLMCONFIG_MASTER_KEY", b64(new_key))
    monkeypatch.setenv("LLMCONFIG_MASTER_KEY_PREVIOUS", b64(old_key))
    backend = make_secret_backend(Settings(_env_file=None))  # type: ignore[call-arg]
    assert (backend.load(old_ref, owner=OWNER), backend.load(new_ref, owner=OWNER)) == ("old", "new")

    monkeypatch.setenv("LLMCONFIG_MASTER_KEY_PREVIOUS", "not a key")
    with pytest.raises(SettingsError, match="LLMCONFIG_MASTER_KEY_PREVIOUS"):
        make_secret_backend(Settings(_env_file=None))  # type: ignore[call-arg]


SECOND_KEY = "sk-canary-second-openai-4c1d8e2f"


def test_rotation_and_the_check_cover_every_key_of_a_provider(
    service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    configure(service, openai_peer, anthropic_peer)
    openai_peer.accepted_keys.add(SECOND_KEY)
    second = service.providers.keys.add("local", ProviderKeyCreate(api_key=SecretStr(SECOND_KEY)), actor="test")
    with transaction(service.sessions) as session:
        before = {key.id: key.secret_ref for key in session.scalars(select(ProviderKey))}
    old_key = read_key_file(service.settings.master_key_file)

    result = rotate_master_key(service.sessions, service.settings, actor="test")

    assert result.reencrypted == 3 and sorted(result.providers) == ["claude", "local"]
    with transaction(service.sessions) as session:
        after = {key.id: (key.provider_id, key.secret_ref) for key in session.scalars(select(ProviderKey))}
    assert after.keys() == before.keys() and all(after[k][1] != before[k] for k in before)
    for provider_id, reference in after.values():
        with pytest.raises(SecretDecryptionError):
            LocalSecretBackend(old_key).load(reference, owner=provider_id)
    llm = service.get_llm("reasoning")
    for _ in range(2):
        assert llm.invoke("hi").content == "Hello from openai-peer"
    assert openai_peer.keys_sent("/v1/chat/completions")[-2:] == [OPENAI_PEER_KEY, SECOND_KEY]

    # The check names each key: a second key that no longer decrypts is reported on its own.
    foreign = LocalSecretBackend(os.urandom(32)).store(owner=after[second.key_id][0], value=SECOND_KEY)
    with transaction(service.sessions, write=True) as session:
        session.execute(update(ProviderKey).where(ProviderKey.id == second.key_id).values(secret_ref=foreign))
    report = check_secrets(service.sessions, make_secret_backend(service.settings))
    assert report.checked == 3 and report.failed == 1
    (failed,) = [check for check in report.results if not check.ok]
    assert failed.provider_name == "local" and failed.key_id == second.key_id and failed.status == "undecryptable"
    assert failed.key_hint == SECOND_KEY[-4:] and SECOND_KEY not in report.model_dump_json()
    assert_no_plaintext(service, SECOND_KEY.encode())
