"""Fallback chains through the real SDKs: which failures move on, and what the chain still supports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import openai
import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, SecretStr

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate, FallbackTarget
from llmconfig.errors import ProviderBadResponseError
from llmconfig.llm.fallback import FallbackChatModel
from llmconfig.providers import ProviderCreate
from llmconfig.settings import Settings
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, PEER_KINDS, PeerProvider, free_tcp_port, provider_of_peer
from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply, ToolCall


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"It is sunny in {city}"


@pytest.fixture
def first_peer() -> Iterator[OpenAIPeer]:
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, name="first") as peer:
        yield peer


@pytest.fixture(params=PEER_KINDS)
def failing_first(request: pytest.FixtureRequest, first_peer: OpenAIPeer) -> PeerProvider:
    """The first provider of a chain whose second is ``openai_peer``: another OpenAI peer, then the Anthropic peer."""
    kind: str = request.param
    peer = first_peer if kind == "openai" else request.getfixturevalue("anthropic_peer")
    return provider_of_peer(kind, peer)


def add(service: LLMConfigService, name: str, base_url: str, provider_type: str = "custom", key: str = "") -> str:
    provider, _ = service.providers.add(
        ProviderCreate(
            name=name,
            provider_type=provider_type,  # type: ignore[arg-type]
            api_base_url=base_url,
            api_key=SecretStr(key or OPENAI_PEER_KEY),
        ),
        validate=False,
    )
    return provider.id


def chain(service: LLMConfigService, primary: str, *fallbacks: str, model: str = "gpt-4o") -> BaseChatModel:
    service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id=primary,
            model_name=model,
            fallbacks=[FallbackTarget(provider_id=f, model_name="gpt-4o") for f in fallbacks],
        ),
        actor="test",
    )
    return service.get_llm("reasoning")


def test_a_closed_port_falls_through_to_the_next_provider_with_tools(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    dead = add(service, "dead", f"http://127.0.0.1:{free_tcp_port()}/v1")
    alive = add(service, "alive", openai_peer.base_url)
    llm = chain(service, dead, alive)
    assert isinstance(llm, FallbackChatModel)

    assert llm.invoke("hi").content == "Hello from openai-peer"
    openai_peer.script(ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    message = llm.bind_tools([get_weather]).invoke("weather?")
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert openai_peer.requests_to("/v1/chat/completions")[-1].json["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("behaviour", ["ratelimit429", "error500"])
def test_429_and_5xx_move_on_without_sdk_retries(
    service: LLMConfigService, first_peer: OpenAIPeer, openai_peer: OpenAIPeer, behaviour: str
) -> None:
    first_peer.behaviour = behaviour
    llm = chain(service, add(service, "first", first_peer.base_url), add(service, "second", openai_peer.base_url))
    assert llm.invoke("hi").content == "Hello from openai-peer"
    # One attempt only: the SDK's own retries are off inside a chain.
    assert len(first_peer.requests_to("/v1/chat/completions")) == 1


def test_a_rejected_key_does_not_fall_back(
    service: LLMConfigService, failing_first: PeerProvider, openai_peer: OpenAIPeer
) -> None:
    first = add(service, "first", failing_first.base_url, failing_first.provider_type, key="sk-something-else-entirely")
    llm = chain(service, first, add(service, "second", openai_peer.base_url), model=failing_first.model)
    with pytest.raises(failing_first.authentication_error):
        llm.invoke("hi")
    assert openai_peer.requests_to("/v1/chat/completions") == []


def test_the_last_error_is_raised_when_every_model_fails(service: LLMConfigService) -> None:
    llm = chain(
        service,
        add(service, "dead1", f"http://127.0.0.1:{free_tcp_port()}/v1"),
        add(service, "dead2", f"http://127.0.0.1:{free_tcp_port()}/v1"),
    )
    with pytest.raises(openai.APIConnectionError):
        llm.invoke("hi")


def test_stream_falls_back_before_the_first_chunk(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    llm = chain(
        service,
        add(service, "dead", f"http://127.0.0.1:{free_tcp_port()}/v1"),
        add(service, "alive", openai_peer.base_url),
    )
    chunks = list(llm.stream("hi"))
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == "Hello from openai-peer"


def test_stream_failing_midway_raises_instead_of_restarting(
    service: LLMConfigService, first_peer: OpenAIPeer, openai_peer: OpenAIPeer
) -> None:
    first_peer.default_reply = "one two three four five six seven eight"
    first_peer.stream_delay = 0.2
    llm = chain(service, add(service, "first", first_peer.base_url), add(service, "second", openai_peer.base_url))
    stream = llm.stream("hi")
    first = next(stream)
    assert "Hello" not in str(first.content)
    first_peer.stop()
    # The connection error surfaces even though it is one that would have moved on before the first chunk.
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    assert openai_peer.requests_to("/v1/chat/completions") == []


async def test_async_invoke_and_stream_fall_back(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    llm = chain(
        service,
        add(service, "dead", f"http://127.0.0.1:{free_tcp_port()}/v1"),
        add(service, "alive", openai_peer.base_url),
    )
    assert (await llm.ainvoke("hi")).content == "Hello from openai-peer"
    assert "".join([str(c.content) async for c in llm.astream("hi")]) == "Hello from openai-peer"
    assert [m.content for m in await llm.abatch(["a", "b"])] == ["Hello from openai-peer"] * 2


def test_structured_output_through_a_chain(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    class City(BaseModel):
        name: str
        country: str

    llm = chain(
        service,
        add(service, "dead", f"http://127.0.0.1:{free_tcp_port()}/v1"),
        add(service, "alive", openai_peer.base_url),
    )
    openai_peer.script(ScriptedReply(tool_calls=[ToolCall("City", {"name": "Oslo", "country": "Norway"})]))
    assert llm.with_structured_output(City).invoke("Oslo?") == City(name="Oslo", country="Norway")


def test_agent_across_providers(service: LLMConfigService, anthropic_peer: AnthropicPeer) -> None:
    """A dead OpenAI-compatible primary and an Anthropic fallback: tools are bound in each one's format."""
    dead = add(service, "dead", f"http://127.0.0.1:{free_tcp_port()}/v1")
    claude = add(service, "claude", anthropic_peer.root_url, provider_type="anthropic", key=ANTHROPIC_PEER_KEY)
    service.config.set_global(
        "tools",
        ConfigUpdate(
            provider_id=dead,
            model_name="gpt-4o",
            fallbacks=[FallbackTarget(provider_id=claude, model_name="claude-haiku-4-5")],
        ),
        actor="test",
    )
    anthropic_peer.script(
        ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Bergen"})]),
        ScriptedReply(text="Sunny in Bergen."),
    )
    agent = create_agent(service.get_llm("tools"), tools=[get_weather])
    result = agent.invoke({"messages": [HumanMessage("Weather in Bergen?")]})
    assert result["messages"][-1].content == "Sunny in Bergen."
    assert [m.content for m in result["messages"] if m.type == "tool"] == ["It is sunny in Bergen"]
    assert anthropic_peer.requests_to("/v1/messages")[0].json["tools"][0]["name"] == "get_weather"


def test_without_fallbacks_the_plain_provider_model_is_returned(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    llm = chain(service, add(service, "alive", openai_peer.base_url))
    assert not isinstance(llm, FallbackChatModel)
    assert type(llm).__name__ == "ChatOpenAI"


# ------------------------------------------------------------------------------------------------ bad answers


@pytest.mark.parametrize("behaviour", ["html", "garbage", "huge"])
def test_an_answer_that_is_not_json_or_too_large_moves_on(
    service: LLMConfigService, failing_first: PeerProvider, openai_peer: OpenAIPeer, behaviour: str
) -> None:
    failing_first.peer.behaviour = behaviour
    failing_first.peer.huge_bytes = 40 * 1024 * 1024  # beyond the default 32 MiB cap
    first = add(service, "first", failing_first.base_url, failing_first.provider_type, key=failing_first.key)
    llm = chain(service, first, add(service, "second", openai_peer.base_url), model=failing_first.model)
    assert llm.invoke("hi").content == "Hello from openai-peer"
    assert "".join(str(c.content) for c in llm.stream("hi")) == "Hello from openai-peer"
    assert asyncio.run(llm.ainvoke("hi")).content == "Hello from openai-peer"
    # One attempt each time on the first provider: no SDK retries inside a chain.
    assert failing_first.chat_requests() == 3


def test_a_blocked_provider_moves_on_to_the_next_one(
    settings_factory: Callable[..., Settings],
    migrated_database_url: str,
    first_peer: OpenAIPeer,
    openai_peer: OpenAIPeer,
) -> None:
    # The first provider is on 127.0.0.2, which the deny list names; the second is on 127.0.0.1.
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, name="denied", host="127.0.0.2") as denied:
        service = LLMConfigService(
            settings_factory(database_url=migrated_database_url, cache_ttl=0, outbound_deny="127.0.0.2")
        )
        try:
            llm = chain(service, add(service, "denied", denied.base_url), add(service, "alive", openai_peer.base_url))
            assert llm.invoke("hi").content == "Hello from openai-peer"
            assert asyncio.run(llm.ainvoke("hi")).content == "Hello from openai-peer"
            assert "".join(str(c.content) for c in llm.stream("hi")) == "Hello from openai-peer"
            assert denied.connections_opened == 0
        finally:
            service.close()


def test_a_chain_whose_every_model_answers_badly_raises_a_clear_error(
    service: LLMConfigService, first_peer: OpenAIPeer, openai_peer: OpenAIPeer
) -> None:
    first_peer.behaviour = "html"
    openai_peer.behaviour = "garbage"
    llm = chain(service, add(service, "first", first_peer.base_url), add(service, "second", openai_peer.base_url))
    with pytest.raises(ProviderBadResponseError) as caught:
        llm.invoke("hi")
    error = caught.value
    # The last model's error, saying which host answered what and what to check …
    assert str(error).startswith(f"127.0.0.1:{openai_peer.port} answered POST /v1/chat/completions with a body")
    assert "base URL" in str(error)
    # … and a note naming every model of the chain with what went wrong there.
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "Every model of the fallback chain failed" in notes
    assert f"first/gpt-4o: 127.0.0.1:{first_peer.port} answered POST /v1/chat/completions with an HTML page" in notes
    assert "second/gpt-4o:" in notes
    assert OPENAI_PEER_KEY not in str(error) + notes


@pytest.mark.parametrize("behaviour", ["badrequest400"])
def test_a_bad_request_does_not_fall_back(
    service: LLMConfigService, first_peer: OpenAIPeer, openai_peer: OpenAIPeer, behaviour: str
) -> None:
    first_peer.behaviour = behaviour
    llm = chain(service, add(service, "first", first_peer.base_url), add(service, "second", openai_peer.base_url))
    with pytest.raises(openai.BadRequestError):
        llm.invoke("hi")
    assert openai_peer.requests_to("/v1/chat/completions") == []
