"""The provider service against real loopback providers, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, select

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.db.models import Provider, ProviderKey, ProviderModel
from llmconfig.errors import (
    ConflictError,
    NotFoundError,
    ProviderBadResponseError,
    ProviderTimeoutError,
    ProviderUnauthorizedError,
    ProviderUnreachableError,
    ValidationError,
)
from llmconfig.providers import ProviderCreate, ProviderUpdate
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer


def custom(name: str, base_url: str, key: str | None = OPENAI_PEER_KEY) -> ProviderCreate:
    return ProviderCreate(
        name=name, provider_type="custom", api_base_url=base_url, api_key=SecretStr(key) if key else None
    )


def provider_count(service: LLMConfigService) -> int:
    with service.sessions() as session:
        return session.scalar(select(func.count()).select_from(Provider)) or 0


def test_add_validates_discovers_models_and_hides_the_key(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    provider, result = service.providers.add(custom("local", openai_peer.root_url))

    assert result is not None and result.ok and result.status == "ok"
    assert result.models_discovered == 4
    assert provider.validation_status == "ok" and provider.validated_at is not None
    # A bare server address gets the /v1 every OpenAI-compatible server uses.
    assert provider.api_base_url == openai_peer.base_url
    assert provider.has_api_key and provider.api_key_hint == OPENAI_PEER_KEY[-4:]
    assert OPENAI_PEER_KEY not in provider.model_dump_json()
    assert openai_peer.last_request.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"

    catalog = {entry.model_name: entry.kind for entry in service.providers.catalog("local")}
    assert catalog == {
        "gpt-4o": "chat",
        "gpt-4o-mini": "chat",
        "local-chat": "chat",
        "text-embedding-3-small": "embeddings",
    }
    with service.sessions() as session:
        stored = session.scalars(select(ProviderKey.secret_ref)).one()
    assert stored is not None and OPENAI_PEER_KEY not in stored


def test_anthropic_discovery_uses_its_headers(service: LLMConfigService, anthropic_peer: AnthropicPeer) -> None:
    _provider, result = service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        )
    )
    assert result is not None and result.ok
    request = anthropic_peer.last_request
    assert request.headers["x-api-key"] == ANTHROPIC_PEER_KEY
    assert "anthropic-version" in request.headers
    assert {m.model_name for m in service.providers.catalog("claude")} == {"claude-sonnet-4-5", "claude-haiku-4-5"}


def test_anthropic_without_models_api_falls_back_to_builtin_catalog(
    service: LLMConfigService, anthropic_peer: AnthropicPeer
) -> None:
    anthropic_peer.models_endpoint = False
    _, result = service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        )
    )
    assert result is not None and result.ok
    catalog = service.providers.catalog("claude")
    assert "claude-sonnet-4-5" in {m.model_name for m in catalog}
    assert all(m.kind == "chat" for m in catalog)


@pytest.mark.parametrize(
    ("behaviour", "error", "words"),
    [
        pytest.param("hang", ProviderTimeoutError, "did not answer", marks=pytest.mark.request_timeout(1)),
        ("html", ProviderBadResponseError, "not JSON"),
        ("garbage", ProviderBadResponseError, "not JSON"),
        ("error500", ProviderBadResponseError, "HTTP 500"),
    ],
)
def test_misbehaving_provider_is_refused_and_nothing_is_written(
    service: LLMConfigService, openai_peer: OpenAIPeer, behaviour: str, error: type[Exception], words: str
) -> None:
    openai_peer.behaviour = behaviour
    openai_peer.hang_seconds = 10
    with pytest.raises(error, match=words) as caught:
        service.providers.add(custom("local", openai_peer.root_url))
    assert "\n" not in str(caught.value)
    assert provider_count(service) == 0


def test_wrong_key_is_unauthorized(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    with pytest.raises(ProviderUnauthorizedError, match="rejected the API key") as caught:
        service.providers.add(custom("local", openai_peer.root_url, key="sk-wrong-key-0123456789"))
    assert "sk-wrong-key" not in str(caught.value)
    assert provider_count(service) == 0


def test_closed_port_is_unreachable(service: LLMConfigService) -> None:
    with pytest.raises(ProviderUnreachableError, match="Cannot connect"):
        service.providers.add(custom("local", f"http://127.0.0.1:{free_tcp_port()}/v1"))
    assert provider_count(service) == 0


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/v1", "http://user:pw@example.com/v1", "http://"])
def test_malformed_base_url_is_rejected(service: LLMConfigService, url: str) -> None:
    with pytest.raises(ValidationError, match="Base URL"):
        service.providers.add(custom("local", url), validate=False)
    assert provider_count(service) == 0


def test_unknown_provider_type_is_rejected_before_anything_runs() -> None:
    with pytest.raises(PydanticValidationError, match="provider_type"):
        ProviderCreate(name="x", provider_type="cohere")  # type: ignore[arg-type]


def test_custom_provider_needs_a_base_url(service: LLMConfigService) -> None:
    with pytest.raises(ValidationError, match="needs a base URL"):
        service.providers.add(ProviderCreate(name="local", provider_type="custom"), validate=False)


def test_duplicate_name_is_a_conflict(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    service.providers.add(custom("local", openai_peer.root_url))
    with pytest.raises(ConflictError, match="already exists"):
        service.providers.add(custom("local", openai_peer.root_url), validate=False)
    assert provider_count(service) == 1


def test_validate_records_outcome_without_bumping_version(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    provider, _ = service.providers.add(custom("local", openai_peer.root_url), validate=False)
    assert provider.validation_status == "never"

    result = service.providers.validate("local")
    after = service.providers.get("local")
    assert result.ok and result.latency_ms is not None and result.models_discovered == 4
    assert after.validation_status == "ok" and after.validated_at is not None
    assert after.version == provider.version

    openai_peer.behaviour = "html"
    failed = service.providers.validate(provider.id)
    assert not failed.ok and failed.status == "bad_response"
    stored = service.providers.get("local")
    assert stored.validation_status == "failed" and stored.validation_error == failed.detail
    # The catalog of the last good discovery is kept.
    assert len(service.providers.catalog("local")) == 4


def test_update_changes_fields_and_replaces_or_removes_the_key(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    _provider, _ = service.providers.add(custom("local", openai_peer.root_url))
    renamed = service.providers.update(
        "local", ProviderUpdate(name="renamed", api_key=SecretStr("sk-another-key-abcdef1234"), version=1)
    )
    assert renamed.name == "renamed" and renamed.version == 2
    assert renamed.api_key_hint == "1234" and renamed.validation_status == "never"
    # The new key is the one used from now on.
    assert not service.providers.validate("renamed").ok

    removed = service.providers.update("renamed", ProviderUpdate(api_key=None))
    assert not removed.has_api_key and removed.api_key_hint is None
    openai_peer.api_key = None
    assert service.providers.validate("renamed").ok


def test_stale_version_is_rejected_and_changes_nothing(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    service.providers.add(custom("local", openai_peer.root_url))
    service.providers.update("local", ProviderUpdate(enabled=False, version=1))
    with pytest.raises(ConflictError, match="changed by someone else"):
        service.providers.update("local", ProviderUpdate(name="other", version=1))
    current = service.providers.get("local")
    assert current.name == "local" and not current.enabled and current.version == 2


def test_remove_is_refused_while_in_use_and_cascades_the_catalog(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    service.providers.add(custom("local", openai_peer.root_url))
    service.providers.add(custom("spare", openai_peer.root_url))
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    service.config.set_global("tools", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t")

    with pytest.raises(ConflictError, match="in use by reasoning, tools"):
        service.providers.remove("local")

    service.config.set_global("reasoning", ConfigUpdate(provider_id="spare", model_name="gpt-4o"), actor="t")
    service.config.set_global("tools", ConfigUpdate(provider_id="spare", model_name="gpt-4o"), actor="t")
    service.providers.remove("local")
    with pytest.raises(NotFoundError):
        service.providers.get("local")
    with service.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProviderModel)) == 4  # only spare's


def test_unknown_provider_is_not_found(service: LLMConfigService) -> None:
    with pytest.raises(NotFoundError, match="providers list"):
        service.providers.get("nope")


# ------------------------------------------------------------------------------------------------ origin changes


def test_moving_a_provider_with_a_key_to_another_origin_needs_the_key_again_and_writes_nothing(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    service.providers.add(custom("local", openai_peer.root_url))
    before = service.providers.get("local")
    trail = len(service.audit.entries())
    port = openai_peer.port
    elsewhere = [
        f"http://127.0.0.2:{port}/v1",  # another host
        f"http://127.0.0.1:{free_tcp_port()}/v1",  # another port
        f"https://127.0.0.1:{port}/v1",  # another scheme
        f"http://localhost:{port}/v1",  # the same machine, but another host name: the browser's rule, and ours
    ]
    for url in elsewhere:
        with pytest.raises(ValidationError, match="moves provider 'local' to another origin") as refused:
            service.providers.update("local", ProviderUpdate(api_base_url=url))
        assert "send the key again" in str(refused.value) and '"keep_api_key": true' in str(refused.value)
        assert OPENAI_PEER_KEY not in str(refused.value)

    assert service.providers.get("local") == before
    assert len(service.audit.entries()) == trail
    # The stored key still goes where it went: the peer accepts it.
    assert service.providers.validate("local").ok


def test_an_origin_change_keeps_the_stored_key_only_when_asked_and_the_audit_says_so(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    service.providers.add(custom("local", f"http://localhost:{openai_peer.port}"))

    kept = service.providers.update("local", ProviderUpdate(api_base_url=openai_peer.root_url, keep_api_key=True))

    assert kept.api_base_url == openai_peer.base_url and kept.has_api_key
    assert kept.api_key_hint == OPENAI_PEER_KEY[-4:] and kept.version == 2
    assert service.providers.validate("local").ok  # the same key, now sent to the new origin
    entry = service.audit.entries()[0]
    assert entry.action == "provider.update.key_kept_across_origin"
    assert entry.before is not None and entry.before["api_base_url"] == f"http://localhost:{openai_peer.port}/v1"
    assert entry.after is not None and entry.after["api_base_url"] == openai_peer.base_url
    assert OPENAI_PEER_KEY not in entry.model_dump_json()


def test_an_origin_change_with_a_new_key_or_without_any_key_needs_nothing_more(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    service.providers.add(custom("local", f"http://localhost:{openai_peer.port}"))
    moved = service.providers.update(
        "local", ProviderUpdate(api_base_url=openai_peer.root_url, api_key=SecretStr(OPENAI_PEER_KEY))
    )
    assert moved.api_base_url == openai_peer.base_url and moved.has_api_key
    assert service.audit.entries()[0].action == "provider.update"

    service.providers.update("local", ProviderUpdate(api_key=None))
    keyless = service.providers.update("local", ProviderUpdate(api_base_url=f"http://localhost:{openai_peer.port}"))
    assert keyless.api_base_url == f"http://localhost:{openai_peer.port}/v1" and not keyless.has_api_key


def test_a_change_on_the_same_origin_keeps_the_key_without_being_asked(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    service.providers.add(custom("local", openai_peer.root_url))
    port = openai_peer.port
    # Another path, the host in capitals, the scheme in capitals: the same origin each time.
    for url in (f"http://127.0.0.1:{port}/openai/v1", f"HTTP://127.0.0.1:{port}/v1"):
        changed = service.providers.update("local", ProviderUpdate(api_base_url=url))
        assert changed.has_api_key and changed.api_key_hint == OPENAI_PEER_KEY[-4:]
    assert service.audit.entries()[0].action == "provider.update"


def test_a_default_base_url_counts_as_its_origin(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    """An OpenAI provider added without a base URL talks to api.openai.com: moving it elsewhere moves the key."""
    service.providers.add(
        ProviderCreate(name="openai", provider_type="openai", api_key=SecretStr(OPENAI_PEER_KEY)), validate=False
    )
    with pytest.raises(ValidationError, match="another origin"):
        service.providers.update("openai", ProviderUpdate(api_base_url=openai_peer.base_url))
    # Back to the default (null) from an explicit default URL is no move at all.
    service.providers.update("openai", ProviderUpdate(api_base_url="https://api.openai.com/v1"))
    assert service.providers.update("openai", ProviderUpdate(api_base_url=None)).has_api_key


def test_keep_api_key_together_with_a_new_key_is_refused() -> None:
    with pytest.raises(PydanticValidationError, match="either a new api_key or keep_api_key"):
        ProviderUpdate(api_key=SecretStr(OPENAI_PEER_KEY), keep_api_key=True)
