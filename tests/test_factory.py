"""get_llm / get_embeddings against real loopback providers through the real SDKs, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import logging
import os
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel, SecretStr

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.errors import LLMConfigError, NotFoundError, SecretDecryptionError
from llmconfig.providers import ProviderCreate, ProviderUpdate
from llmconfig.settings import Settings
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, add_peer_providers, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply, ToolCall


@pytest.fixture
def configured(service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> LLMConfigService:
    """reasoning and embeddings on an OpenAI-compatible server, tools on an Anthropic one."""
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.config.set_global(
        "reasoning",
        ConfigUpdate(provider_id="local", model_name="local-chat", temperature=0.3, max_tokens=64),
        actor="test",
    )
    service.config.set_global("tools", ConfigUpdate(provider_id="claude", model_name="claude-haiku-4-5"), actor="test")
    service.config.set_global(
        "embeddings", ConfigUpdate(provider_id="local", model_name="text-embedding-3-small"), actor="test"
    )
    return service


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"It is sunny in {city}"


def test_chat_model_follows_the_configuration(configured: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    llm = configured.get_llm("reasoning")
    assert isinstance(llm, ChatOpenAI)

    answer = llm.invoke("hi")
    assert answer.content == "Hello from openai-peer"
    request = openai_peer.requests_to("/v1/chat/completions")[-1]
    assert request.json["model"] == "local-chat"
    assert request.json["temperature"] == 0.3
    assert request.json.get("max_tokens", request.json.get("max_completion_tokens")) == 64
    assert request.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"
    assert answer.usage_metadata is not None and answer.usage_metadata["input_tokens"] >= 1


def test_streaming_and_batch(configured: LLMConfigService) -> None:
    llm = configured.get_llm("reasoning")
    chunks = list(llm.stream("hi"))
    assert len(chunks) > 1
    assert "".join(str(chunk.content) for chunk in chunks) == "Hello from openai-peer"
    assert [m.content for m in llm.batch(["a", "b"])] == ["Hello from openai-peer"] * 2


def test_bind_tools_gets_the_tool_call(configured: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    openai_peer.script(ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    message = configured.get_llm("reasoning").bind_tools([get_weather]).invoke("weather in Oslo?")
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Oslo"})]


def test_structured_output(configured: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    class City(BaseModel):
        name: str
        country: str

    openai_peer.script(ScriptedReply(tool_calls=[ToolCall("City", {"name": "Oslo", "country": "Norway"})]))
    result = configured.get_llm("reasoning").with_structured_output(City, method="function_calling").invoke("Oslo?")
    assert result == City(name="Oslo", country="Norway")


def test_anthropic_model_invokes_streams_and_calls_tools(
    configured: LLMConfigService, anthropic_peer: AnthropicPeer
) -> None:
    llm = configured.get_llm("tools")
    assert isinstance(llm, ChatAnthropic)
    assert llm.invoke("hi").content == "Hello from anthropic-peer"
    assert "".join(str(c.content) for c in llm.stream("hi")) == "Hello from anthropic-peer"
    request = anthropic_peer.requests_to("/v1/messages")[-1]
    # anthropic>=2 sends the key as a Bearer token; older releases used x-api-key.
    sent_key = request.headers.get("x-api-key") or request.headers["authorization"].removeprefix("Bearer ")
    assert sent_key == ANTHROPIC_PEER_KEY and request.json["model"] == "claude-haiku-4-5"

    anthropic_peer.script(ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Bergen"})]))
    message = llm.bind_tools([get_weather]).invoke("weather?")
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Bergen"})]


def test_agent_runs_one_tool_calling_turn(configured: LLMConfigService, anthropic_peer: AnthropicPeer) -> None:
    anthropic_peer.script(
        ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Tromsø"})]),
        ScriptedReply(text="It is sunny in Tromsø today."),
    )
    agent = create_agent(configured.get_llm("tools"), tools=[get_weather])
    result = agent.invoke({"messages": [HumanMessage("What is the weather in Tromsø?")]})

    messages = result["messages"]
    assert messages[-1].content == "It is sunny in Tromsø today."
    tool_results = [m for m in messages if m.type == "tool"]
    assert [m.content for m in tool_results] == ["It is sunny in Tromsø"]
    # The second request carried the tool's result back to the model.
    second = anthropic_peer.requests_to("/v1/messages")[-1].json
    assert any(
        isinstance(block, dict) and block.get("type") == "tool_result"
        for message in second["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [])
    )


def test_embeddings(configured: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    embeddings = configured.get_embeddings()
    assert isinstance(embeddings.wrapped, OpenAIEmbeddings)  # type: ignore[attr-defined]
    first = embeddings.embed_query("hello")
    assert len(first) == openai_peer.embedding_dimensions
    assert embeddings.embed_query("hello") == first
    assert embeddings.embed_documents(["hello", "world"])[0] == first
    # Server-side text, not client-side token ids: other servers' models do not use OpenAI's vocabularies.
    assert isinstance(openai_peer.requests_to("/v1/embeddings")[-1].json["input"], list | str)


async def test_async_twins(configured: LLMConfigService) -> None:
    llm = await configured.get_llm_for_interaction("reasoning")
    assert (await llm.ainvoke("hi")).content == "Hello from openai-peer"
    assert "".join([str(c.content) async for c in llm.astream("hi")]) == "Hello from openai-peer"
    embeddings = await configured.get_embeddings_model()
    assert len(await embeddings.aembed_query("x")) == 8
    assert await configured.get_llm_for_interaction("reasoning") is configured.get_llm("reasoning")


def test_warm_calls_reuse_the_object_and_changes_reach_it(configured: LLMConfigService) -> None:
    first = configured.get_llm("reasoning")
    assert configured.get_llm("reasoning") is first

    configured.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    changed = configured.get_llm("reasoning")
    assert changed is not first and changed.model_name == "gpt-4o"

    # A change elsewhere invalidates, but an unchanged resolution gets the very same object back.
    configured.config.set_global("planning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    assert configured.get_llm("reasoning") is changed


def test_cache_is_bounded_by_the_ttl_not_by_every_call(configured: LLMConfigService) -> None:
    # A second process-like service with a long TTL keeps serving what it resolved until the TTL passes.
    other = LLMConfigService(configured.settings.model_copy(update={"cache_ttl": 3600, "listen_for_changes": False}))
    try:
        before = other.get_llm("reasoning")
        configured.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
        assert other.get_llm("reasoning") is before
        other.invalidate()
        assert other.get_llm("reasoning").model_name == "gpt-4o"
    finally:
        other.close()


def test_key_rotation_reaches_the_cached_model(configured: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    configured.get_llm("reasoning").invoke("hi")
    openai_peer.api_key = "sk-rotated-key-5555555555"
    configured.providers.update("local", ProviderUpdate(api_key=SecretStr("sk-rotated-key-5555555555")))
    configured.get_llm("reasoning").invoke("hi")
    assert openai_peer.requests_to("/v1/chat/completions")[-1].headers["authorization"].endswith("5555555555")


def test_user_override(configured: LLMConfigService) -> None:
    configured.config.set_override(
        "u-42", "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t"
    )
    assert configured.get_llm("reasoning", user_id="u-42").model_name == "gpt-4o-mini"
    assert configured.get_llm("reasoning", user_id="u-7").model_name == "local-chat"
    configured.config.clear_override("u-42", "reasoning")
    assert configured.get_llm("reasoning", user_id="u-42").model_name == "local-chat"


def test_asking_for_the_wrong_kind_is_explained(configured: LLMConfigService) -> None:
    with pytest.raises(LLMConfigError, match=r"embeddings interaction type; ask for it with get_embeddings\(\)"):
        configured.get_llm("embeddings")
    with pytest.raises(LLMConfigError, match=r"get_llm\(\)"):
        configured.get_embeddings(interaction_type="reasoning")
    with pytest.raises(NotFoundError, match="Unknown interaction type"):
        configured.get_llm("dreaming")


def test_nothing_configured_and_no_environment_fallback_is_a_clear_error(service: LLMConfigService) -> None:
    with pytest.raises(LLMConfigError, match="nothing is configured for 'planning'.*llmconfig config set planning"):
        service.get_llm("planning")


def test_environment_fallback_uses_openai_defaults_and_warns_once(
    service: LLMConfigService, openai_peer: OpenAIPeer, caplog: pytest.LogCaptureFixture
) -> None:
    with_env = LLMConfigService(
        service.settings.model_copy(
            update={"openai_api_key": SecretStr(OPENAI_PEER_KEY), "openai_base_url": openai_peer.base_url}
        )
    )
    try:
        with caplog.at_level(logging.WARNING, logger="llmconfig.llm"):
            llm = with_env.get_llm("planning")
            with_env.invalidate()
            with_env.get_llm("planning")
        assert llm.model_name == "gpt-4o" and llm.temperature == 0.2
        assert llm.invoke("hi").content == "Hello from openai-peer"
    finally:
        with_env.close()
    warnings = [r for r in caplog.records if "OPENAI_API_KEY" in r.getMessage()]
    assert len(warnings) == 1
    assert OPENAI_PEER_KEY not in caplog.text


def test_openai_variables_are_read_through_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0000")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = Settings(_env_file=None)
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-from-the-environment-0000"
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    assert Settings(_env_file=None).openai_api_key is None  # an empty variable is no fallback


def test_unreachable_database_falls_back_to_the_environment(settings_factory: Any, openai_peer: OpenAIPeer) -> None:
    dead = settings_factory(database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_tcp_port()}/none")
    service = LLMConfigService(dead)
    try:
        with pytest.raises(LLMConfigError, match="configuration database is unreachable"):
            service.get_llm("reasoning")
    finally:
        service.close()
    service = LLMConfigService(
        dead.model_copy(update={"openai_api_key": SecretStr(OPENAI_PEER_KEY), "openai_base_url": openai_peer.base_url})
    )
    try:
        assert service.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
    finally:
        service.close()


def test_wrong_master_key_is_a_clear_error_and_nothing_reaches_the_provider(
    configured: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    other_key = base64.b64encode(os.urandom(32)).decode()
    stranger = LLMConfigService(configured.settings.model_copy(update={"master_key": SecretStr(other_key)}))
    sent_before = len(openai_peer.requests_to("/v1/chat/completions"))
    try:
        with pytest.raises(SecretDecryptionError, match="provider 'local'.*master key") as caught:
            stranger.get_llm("reasoning")
        assert other_key not in str(caught.value)
    finally:
        stranger.close()
    assert len(openai_peer.requests_to("/v1/chat/completions")) == sent_before


def test_module_level_helpers_read_the_environment(
    migrated_database_url: str, tmp_path: Any, openai_peer: OpenAIPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmconfig

    monkeypatch.setenv("LLMCONFIG_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("LLMCONFIG_MASTER_KEY_FILE", str(tmp_path / "module.key"))
    monkeypatch.chdir(tmp_path)
    llmconfig.reset_default_service()
    try:
        setup = LLMConfigService()
        setup.providers.add(
            ProviderCreate(name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=None),
            validate=False,
        )
        setup.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="m"), actor="t")
        setup.config.set_global("embeddings", ConfigUpdate(provider_id="local", model_name="e"), actor="t")
        setup.close()
        openai_peer.api_key = None
        openai_peer.models = ("m", "e")
        assert llmconfig.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
        assert len(llmconfig.get_embeddings().embed_query("x")) == 8
    finally:
        llmconfig.reset_default_service()
