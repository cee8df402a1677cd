"""The guard and the answer checks on model calls: the objects ``get_llm`` returns, through the real SDKs.

Validation and discovery are covered in test_outbound.py; here the provider is added without validation
and the policy, the size cap and the answer checks are met when the model is called. Real loopback peers
on SQLite and PostgreSQL; addresses that must never be contacted are refused before any connection.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.errors import ProviderBadResponseError, ProviderBlockedError
from llmconfig.providers import ProviderCreate
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, PeerProvider
from tests.peers import OpenAIPeer, ScriptedReply
from tests.providers.conftest import ServiceFactory, custom

MB = 1024 * 1024


def use(
    service: LLMConfigService,
    base_url: str,
    *,
    provider_type: str = "custom",
    model: str = "gpt-4o",
    name: str = "p",
) -> None:
    """Provider ``name`` at ``base_url``, added without validation, answering ``reasoning`` (and embeddings)."""
    key = ANTHROPIC_PEER_KEY if provider_type == "anthropic" else OPENAI_PEER_KEY
    service.providers.add(
        ProviderCreate(
            name=name,
            provider_type=provider_type,  # type: ignore[arg-type]
            api_base_url=base_url,
            api_key=SecretStr(key),
        ),
        validate=False,
    )
    service.config.set_global("reasoning", ConfigUpdate(provider_id=name, model_name=model), actor="t")
    if provider_type != "anthropic":
        service.config.set_global(
            "embeddings", ConfigUpdate(provider_id=name, model_name="text-embedding-3-small"), actor="t"
        )


def chat_call(llm: BaseChatModel, how: str) -> Any:
    if how == "invoke":
        return llm.invoke("hi").content
    if how == "ainvoke":
        return asyncio.run(llm.ainvoke("hi")).content
    if how == "stream":
        return "".join(str(chunk.content) for chunk in llm.stream("hi"))

    async def astream() -> str:
        return "".join([str(chunk.content) async for chunk in llm.astream("hi")])

    return asyncio.run(astream())


def embed_call(embeddings: Embeddings, how: str) -> Any:
    if how == "embed":
        return embeddings.embed_query("hi")
    return asyncio.run(embeddings.aembed_documents(["hi", "there"]))


CHAT_CALLS = ["invoke", "ainvoke", "stream", "astream"]
EMBED_CALLS = ["embed", "aembed"]


# ------------------------------------------------------------------------------------------------ the guard


@pytest.mark.parametrize("how", CHAT_CALLS)
def test_a_denied_address_is_refused_at_call_time_without_retries_and_the_peer_sees_nothing(
    make_service: ServiceFactory, peer_provider: PeerProvider, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(outbound_deny="127.0.0.1")
    use(service, peer_provider.base_url, provider_type=peer_provider.provider_type, model=peer_provider.model)
    caplog.set_level(logging.INFO, logger=peer_provider.kind)  # the SDK's own logger: "openai" or "anthropic"
    # The guard's own error, not the SDK's "Connection error." wrapped around it.
    with pytest.raises(ProviderBlockedError, match=r"127\.0\.0\.1 is on LLMCONFIG_OUTBOUND_DENY") as caught:
        chat_call(service.get_llm("reasoning"), how)
    assert peer_provider.key not in str(caught.value)
    # The SDKs retry a connection error twice with back-off; a refusal is not worth retrying.
    assert not [r for r in caplog.records if r.getMessage().startswith("Retrying request")]
    assert peer_provider.peer.requests == [] and peer_provider.peer.connections_opened == 0


@pytest.mark.parametrize("how", EMBED_CALLS)
def test_embeddings_to_a_denied_address_are_refused(
    make_service: ServiceFactory, openai_peer: OpenAIPeer, how: str
) -> None:
    service = make_service(outbound_deny="127.0.0.1")
    use(service, openai_peer.base_url)
    with pytest.raises(ProviderBlockedError, match="LLMCONFIG_OUTBOUND_DENY"):
        embed_call(service.get_embeddings(), how)
    assert openai_peer.requests == [] and openai_peer.connections_opened == 0


def test_a_host_name_resolving_to_a_denied_address_is_refused(
    make_service: ServiceFactory, openai_peer: OpenAIPeer
) -> None:
    service = make_service(outbound_deny="127.0.0.0/8,::1")
    use(service, f"http://localhost:{openai_peer.port}/v1")
    with pytest.raises(ProviderBlockedError, match=r"localhost resolves to (127\.0\.0\.1|::1), which is on"):
        service.get_llm("reasoning").invoke("hi")
    with pytest.raises(ProviderBlockedError, match="localhost resolves to"):
        asyncio.run(service.get_llm("reasoning").ainvoke("hi"))
    assert openai_peer.connections_opened == 0


@pytest.mark.request_timeout(5)
def test_the_metadata_address_is_refused_at_call_time_without_a_connection(service: LLMConfigService) -> None:
    use(service, "http://169.254.169.254/v1")
    # Refused by the guard itself: a connection attempt to this (unrouted here) address would end in a timeout.
    with pytest.raises(ProviderBlockedError, match="169.254.169.254 is in the link-local range"):
        service.get_llm("reasoning").invoke("hi")
    with pytest.raises(ProviderBlockedError, match="169.254.169.254 is in the link-local range"):
        service.get_embeddings().embed_query("hi")


def test_environment_proxies_do_not_carry_model_calls_past_the_guard(
    make_service: ServiceFactory, openai_peer: OpenAIPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OpenAIPeer(api_key=None, name="proxy") as proxy:
        for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy", "OPENAI_PROXY"):
            monkeypatch.setenv(variable, proxy.root_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        service = make_service()
        use(service, openai_peer.base_url)
        assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
        assert asyncio.run(service.get_llm("reasoning").ainvoke("hi")).content == "Hello from openai-peer"
        assert proxy.requests == [] and proxy.connections_opened == 0

        # A proxy would connect on the caller's behalf, out of reach of the check: still refused.
        denied = make_service(outbound_deny="127.0.0.1")
        use(denied, openai_peer.base_url, name="denied")
        with pytest.raises(ProviderBlockedError):
            denied.get_llm("reasoning").invoke("hi")
        assert proxy.requests == []


# ------------------------------------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("html", r"with an HTML page \(text/html\), not JSON"),
        ("garbage", r"with a body that is not valid JSON \(application/json\)"),
    ],
)
@pytest.mark.parametrize("how", CHAT_CALLS)
def test_an_answer_that_is_not_json_is_a_clear_error_received_once(
    service: LLMConfigService, peer_provider: PeerProvider, behaviour: str, words: str, how: str
) -> None:
    peer = peer_provider.peer
    use(service, peer_provider.base_url, provider_type=peer_provider.provider_type, model=peer_provider.model)
    peer.behaviour = behaviour
    with pytest.raises(ProviderBadResponseError, match=f"answered POST {peer_provider.chat_path} {words}") as caught:
        chat_call(service.get_llm("reasoning"), how)
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:{peer.port} answered") and "base URL" in message
    assert peer_provider.key not in message
    # Not worth the SDK's retries: a bad answer was received once.
    assert peer_provider.chat_requests() == 1
    peer.behaviour = "ok"
    assert chat_call(service.get_llm("reasoning"), how) == peer_provider.reply


@pytest.mark.parametrize("how", EMBED_CALLS)
def test_an_embeddings_answer_that_is_html_is_a_clear_error(
    service: LLMConfigService, openai_peer: OpenAIPeer, how: str
) -> None:
    use(service, openai_peer.base_url)
    openai_peer.behaviour = "html"
    with pytest.raises(ProviderBadResponseError, match="answered POST /v1/embeddings with an HTML page"):
        embed_call(service.get_embeddings(), how)


@pytest.mark.parametrize("behaviour", ["huge", "gzip_bomb"])
@pytest.mark.parametrize("how", ["invoke", "ainvoke", "embed"])
def test_an_oversized_answer_is_abandoned_at_the_cap_with_bounded_memory(
    make_service: ServiceFactory, openai_peer: OpenAIPeer, behaviour: str, how: str
) -> None:
    service = make_service(model_max_response_bytes=2 * MB)
    use(service, openai_peer.base_url)
    openai_peer.behaviour = behaviour
    openai_peer.huge_bytes = 40 * MB
    tracemalloc.start()
    try:
        call: Callable[[], Any] = (
            (lambda: embed_call(service.get_embeddings(), "embed"))
            if how == "embed"
            else (lambda: chat_call(service.get_llm("reasoning"), how))
        )
        with pytest.raises(ProviderBadResponseError, match=r"larger than 2 MB") as caught:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "LLMCONFIG_MODEL_MAX_RESPONSE_BYTES" in str(caught.value)
    # 40 MB were on offer (for the gzip bomb, after decompression); no more than the cap was ever held.
    assert peak < 12 * MB, f"peak {peak / MB:.1f} MB"
    openai_peer.behaviour = "ok"
    assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"


def test_an_answer_declaring_a_length_over_the_cap_is_refused(
    make_service: ServiceFactory, openai_peer: OpenAIPeer
) -> None:
    service = make_service(model_max_response_bytes=64 * 1024)
    use(service, openai_peer.base_url)
    openai_peer.script(ScriptedReply(text="word " * 40_000))  # 200 kB in a body with a Content-Length
    with pytest.raises(ProviderBadResponseError, match="larger than 64 kB"):
        service.get_llm("reasoning").invoke("hi")
    assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"


@pytest.mark.parametrize("how", ["stream", "astream"])
def test_a_stream_is_capped_on_its_total_size_without_being_buffered(
    make_service: ServiceFactory, openai_peer: OpenAIPeer, how: str
) -> None:
    service = make_service(model_max_response_bytes=64 * 1024)
    use(service, openai_peer.base_url)
    openai_peer.default_reply = ("x" * 1000 + " ") * 200  # about 200 kB in 200 events
    llm = service.get_llm("reasoning")
    received: list[str] = []

    async def drain_async() -> None:
        async for chunk in llm.astream("hi"):
            received.append(str(chunk.content))

    def drain() -> None:
        if how == "astream":
            asyncio.run(drain_async())
        for chunk in llm.stream("hi"):
            received.append(str(chunk.content))

    with pytest.raises(ProviderBadResponseError, match="larger than 64 kB"):
        drain()
    # Chunks reached the caller before the cap was hit: the stream was passed on as it came.
    assert 10 < len("".join(received)) <= 64 * 1024


def test_the_answer_size_cap_is_a_setting_with_a_32_mib_default(settings_factory: Callable[..., Any]) -> None:
    assert settings_factory().model_max_response_bytes == 32 * MB
    assert settings_factory(model_max_response_bytes=4096).model_max_response_bytes == 4096


# ------------------------------------------------------------------------------------------------ connections


def test_every_model_of_a_service_shares_one_pool_of_connections(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    use(service, openai_peer.base_url)
    service.config.set_global("tools", ConfigUpdate(provider_id="p", model_name="gpt-4o-mini"), actor="t")
    reasoning, tools, embeddings = service.get_llm("reasoning"), service.get_llm("tools"), service.get_embeddings()
    for _ in range(10):
        assert reasoning.invoke("hi").content == "Hello from openai-peer"
        assert tools.invoke("hi").content == "Hello from openai-peer"
        assert len(embeddings.embed_query("hi")) == openai_peer.embedding_dimensions
    assert len(openai_peer.requests) == 30
    # One keep-alive connection carried the sequential calls of three distinct objects. (Streams are left
    # out: the SDK stops reading at the last event, before the end of the chunked body, so the connection
    # of a stream is closed rather than reused, whatever the transport.)
    assert openai_peer.connections_opened == 1


def test_async_calls_reuse_connections_too(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    use(service, openai_peer.base_url)
    llm, embeddings = service.get_llm("reasoning"), service.get_embeddings()

    async def calls() -> None:
        for _ in range(10):
            assert (await llm.ainvoke("hi")).content == "Hello from openai-peer"
            assert len(await embeddings.aembed_query("hi")) == openai_peer.embedding_dimensions

    asyncio.run(calls())
    assert openai_peer.connections_opened == 1
    # A second event loop (another asyncio.run) gets connections of its own and works as well.
    asyncio.run(calls())
    assert openai_peer.connections_opened == 2


def test_validation_keeps_its_own_limits(make_service: ServiceFactory, openai_peer: OpenAIPeer) -> None:
    """The model-call cap does not apply to discovery, which keeps LLMCONFIG_OUTBOUND_MAX_RESPONSE_BYTES."""
    service = make_service(model_max_response_bytes=1024)
    openai_peer.models = [f"model-{i:04d}" for i in range(100)]  # about 6 kB of JSON
    _, result = service.providers.add(custom("local", openai_peer.base_url))
    assert result is not None and result.ok and result.models_discovered == 100
