"""Moving stored keys between the local backend and AWS Secrets Manager (a real moto_server), live.

On SQLite and PostgreSQL: a service created before the migration keeps answering from the loopback peer
while and after the keys move, the second run changes nothing, and the source copies are gone afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from llmconfig import LLMConfigService
from llmconfig.config.schemas import ConfigUpdate
from llmconfig.db.engine import transaction
from llmconfig.db.models import Provider, ProviderKey
from llmconfig.errors import SecretBackendError, SecretDecryptionError
from llmconfig.providers import ProviderUpdate
from llmconfig.providers.schemas import ProviderKeyCreate
from llmconfig.secrets import LocalSecretBackend, build_backend
from llmconfig.secrets.maintenance import migrate_secrets
from llmconfig.settings import Settings
from tests.cli_helpers import stored_bytes
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, add_peer_providers
from tests.peers import AnthropicPeer, OpenAIPeer

PEER_ANSWER = "Hello from openai-peer"


@pytest.fixture
def settings(migrated_database_url: str, settings_factory: Callable[..., Settings], moto_endpoint: str) -> Settings:
    return settings_factory(
        database_url=migrated_database_url,
        aws_endpoint_url=moto_endpoint,
        aws_secret_prefix=f"llmconfig-{uuid.uuid4().hex[:8]}/",
        cache_ttl=0,
    )


@pytest.fixture
def live(settings: Settings, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> Iterator[LLMConfigService]:
    """A running service (local backend) with two providers, created before any migration."""
    service = LLMConfigService(settings)
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="local-chat"), actor="test")
    try:
        yield service
    finally:
        service.close()


def rows(service: LLMConfigService) -> dict[str, tuple[str, str, int]]:
    """Provider name -> (id, secret reference of its first key, version)."""
    with transaction(service.sessions) as session:
        return {
            p.name: (p.id, p.keys[0].secret_ref if p.keys else "", p.version) for p in session.scalars(select(Provider))
        }


def aws_secret_names(settings: Settings) -> list[str]:
    client = boto3.client("secretsmanager", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    names: list[str] = []
    for page in client.get_paginator("list_secrets").paginate():
        names += [s["Name"] for s in page["SecretList"] if s["Name"].startswith(settings.aws_secret_prefix)]
    return names


class Invoker:
    """Calls get_llm("reasoning").invoke in a loop on another thread, recording every failure."""

    def __init__(self, service: LLMConfigService) -> None:
        self._service = service
        self._stop = threading.Event()
        self.calls = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Invoker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._service.get_llm("reasoning").invoke("hi").content
                if answer != PEER_ANSWER:
                    self.failures.append(f"unexpected answer {answer!r}")
            except Exception as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}")
            self.calls += 1


def test_migrate_to_aws_and_back_keeps_every_provider_answering(live: LLMConfigService, settings: Settings) -> None:
    early = live.get_llm("reasoning")
    assert early.invoke("hi").content == PEER_ANSWER
    before = rows(live)
    assert all(ref.startswith("local:") for _, ref, _ in before.values())

    with Invoker(live) as invoker:
        to_aws = migrate_secrets(live.sessions, build_backend(settings, "aws"), actor="test")
        invoker_calls_during = invoker.calls
    assert invoker.failures == [] and invoker_calls_during > 0

    assert sorted(to_aws.migrated) == ["claude", "local"] and to_aws.deleted_from_source == 2
    moved = rows(live)
    for name, (provider_id, ref, version) in moved.items():
        # One secret per key, named after the key and ending with its provider (which binds it).
        assert ref.startswith(f"aws:{settings.aws_secret_prefix}keys/") and ref.endswith(f"/providers/{provider_id}")
        assert version > before[name][2]
    assert sorted(aws_secret_names(settings)) == sorted(ref.removeprefix("aws:") for _, ref, _ in moved.values())
    aws = build_backend(settings, "aws")
    assert aws.load(moved["local"][1], owner=moved["local"][0]) == OPENAI_PEER_KEY
    assert aws.load(moved["claude"][1], owner=moved["claude"][0]) == ANTHROPIC_PEER_KEY
    # The service created before (LLMCONFIG_SECRET_BACKEND=local) reads the aws references.
    assert early.invoke("hi").content == PEER_ANSWER
    assert live.get_llm("reasoning").invoke("hi").content == PEER_ANSWER
    assert live.providers.validate("claude").ok
    actions = [e.action for e in live.audit.entries(limit=10)]
    assert actions.count("provider.secret_migrate") == 2

    # Idempotent: nothing moves, nothing is written.
    revision = live.resolver.revision()
    again = migrate_secrets(live.sessions, build_backend(settings, "aws"), actor="test")
    assert again.migrated == [] and again.unchanged == 2
    assert rows(live) == moved and live.resolver.revision() == revision

    with Invoker(live) as invoker:
        back = migrate_secrets(live.sessions, build_backend(settings, "local"), actor="test")
    assert invoker.failures == []
    assert sorted(back.migrated) == ["claude", "local"] and back.deleted_from_source == 2
    home = rows(live)
    assert all(ref.startswith("local:v1:") for _, ref, _ in home.values())
    local = LocalSecretBackend.from_settings(settings, create=False)
    assert local.load(home["local"][1], owner=home["local"][0]) == OPENAI_PEER_KEY
    assert local.load(home["claude"][1], owner=home["claude"][0]) == ANTHROPIC_PEER_KEY
    assert aws_secret_names(settings) == []  # deleted from the source after each commit
    assert migrate_secrets(live.sessions, build_backend(settings, "local"), actor="test").migrated == []
    assert live.get_llm("reasoning").invoke("hi").content == PEER_ANSWER
    assert early.invoke("hi").content == PEER_ANSWER

    data = stored_bytes(settings.database_url)
    assert OPENAI_PEER_KEY.encode() not in data and ANTHROPIC_PEER_KEY.encode() not in data


def test_a_process_on_aws_reads_local_references_only_with_an_existing_key(
    live: LLMConfigService, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    on_aws = LLMConfigService(settings.model_copy(update={"secret_backend": "aws"}))
    try:
        assert on_aws.get_llm("reasoning").invoke("hi").content == PEER_ANSWER  # local: reference, key file
    finally:
        on_aws.close()
    missing = tmp_path_factory.mktemp("nokey") / "llmconfig.key"
    keyless = LLMConfigService(settings.model_copy(update={"secret_backend": "aws", "master_key_file": missing}))
    try:
        with pytest.raises(SecretBackendError, match="does not exist") as caught:
            keyless.providers.validate("local")
        assert "local" in str(caught.value)
        assert not missing.exists()  # never created just to read
    finally:
        keyless.close()


def test_a_failure_midway_leaves_every_provider_readable_and_a_rerun_continues(
    live: LLMConfigService, settings: Settings
) -> None:
    local_id = rows(live)["local"][0]
    broken = LocalSecretBackend(b"\x01" * 32).store(owner=local_id, value=OPENAI_PEER_KEY)
    with transaction(live.sessions, write=True) as session:
        session.execute(update(ProviderKey).where(ProviderKey.provider_id == local_id).values(secret_ref=broken))

    with pytest.raises(SecretDecryptionError) as caught:
        migrate_secrets(live.sessions, build_backend(settings, "aws"), actor="test")

    message = str(caught.value)
    assert "'local'" in message and local_id in message and "run the command again" in message
    state = rows(live)
    assert state["claude"][1].startswith("aws:") and state["local"][1] == broken
    assert live.providers.validate("claude").ok  # moved before the failure, readable
    assert len(aws_secret_names(settings)) == 1  # no copy left behind for the provider that failed

    live.providers.update("local", ProviderUpdate(api_key=SecretStr(OPENAI_PEER_KEY)), actor="test")
    rerun = migrate_secrets(live.sessions, build_backend(settings, "aws"), actor="test")
    assert rerun.migrated == ["local"] and rerun.unchanged == 1
    assert live.get_llm("reasoning").invoke("hi").content == PEER_ANSWER
    assert len(aws_secret_names(settings)) == 2


SECOND_KEY = "sk-canary-second-openai-4c1d8e2f"


def key_refs(service: LLMConfigService, name: str) -> list[str]:
    with transaction(service.sessions) as session:
        provider = session.scalars(select(Provider).where(Provider.name == name)).one()
        return [key.secret_ref for key in provider.keys]


def test_migrate_moves_every_key_of_a_provider_and_calls_take_both_from_the_new_backend(
    live: LLMConfigService, settings: Settings, openai_peer: OpenAIPeer
) -> None:
    openai_peer.accepted_keys.add(SECOND_KEY)
    live.providers.keys.add("local", ProviderKeyCreate(api_key=SecretStr(SECOND_KEY)), actor="test")

    to_aws = migrate_secrets(live.sessions, build_backend(settings, "aws"), actor="test")

    assert sorted(to_aws.migrated) == ["claude", "local", "local"] and to_aws.deleted_from_source == 3
    refs = key_refs(live, "local")
    assert len(refs) == 2 and len(set(refs)) == 2 and all(ref.startswith("aws:") for ref in refs)
    assert sorted(aws_secret_names(settings)) == sorted(
        [ref.removeprefix("aws:") for ref in refs] + [key_refs(live, "claude")[0].removeprefix("aws:")]
    )
    openai_peer.reset()
    openai_peer.accepted_keys.add(SECOND_KEY)
    llm = live.get_llm("reasoning")
    for _ in range(4):
        assert llm.invoke("hi").content == PEER_ANSWER
    assert openai_peer.keys_sent("/v1/chat/completions") == [OPENAI_PEER_KEY, SECOND_KEY] * 2

    back = migrate_secrets(live.sessions, build_backend(settings, "local"), actor="test")
    assert sorted(back.migrated) == ["claude", "local", "local"] and aws_secret_names(settings) == []
    assert all(ref.startswith("local:") for ref in key_refs(live, "local"))
    assert live.get_llm("reasoning").invoke("hi").content == PEER_ANSWER
    data = stored_bytes(settings.database_url)
    assert SECOND_KEY.encode() not in data and OPENAI_PEER_KEY.encode() not in data
