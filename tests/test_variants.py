"""Weighted variants through get_llm: sticky per user in every process, split by weight without a user,
fallbacks per variant, and usage compared variant by variant. Real peers behind the real SDKs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from llmconfig import LLMConfigService
from llmconfig.config import MAIN, ConfigUpdate, choose
from llmconfig.llm.variants import VariantChatModel, VariantEmbeddings
from llmconfig.providers import ProviderCreate
from llmconfig.settings import Settings
from tests.helpers import add_peer_providers, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer, ScriptedReply, ToolCall

OPENAI_ANSWER = "Hello from openai-peer"
ANTHROPIC_ANSWER = "Hello from anthropic-peer"
USERS = [f"u-{n}" for n in range(40)]


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"It is sunny in {city}"


@pytest.fixture
def peers(service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> LLMConfigService:
    """Providers ``local`` (OpenAI peer) and ``claude`` (Anthropic peer)."""
    add_peer_providers(service, openai_peer, anthropic_peer)
    return service


def split(service: LLMConfigService, main: int = 50, claude: int = 50, **fields: Any) -> None:
    """``reasoning``: local/gpt-4o as ``main`` and the Anthropic peer as variant ``claude``."""
    service.config.set_global(
        "reasoning",
        ConfigUpdate.model_validate(
            {
                "provider_id": "local",
                "model_name": "gpt-4o",
                "weight": main,
                "variants": [
                    {"name": "claude", "provider_id": "claude", "model_name": "claude-haiku-4-5", "weight": claude}
                ],
                **fields,
            }
        ),
        actor="t",
    )


def expected(service: LLMConfigService, user_id: str) -> str:
    return choose(service.config.get_entry("reasoning"), user_id)


def variant_of(llm: Any) -> str:
    return "claude" if type(llm).__name__ == "ChatAnthropic" or "Anthropic" in type(llm).__name__ else MAIN


def test_a_user_always_gets_the_same_variant_in_every_service_on_the_database(
    peers: LLMConfigService, migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    split(peers)
    other = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=0))
    try:
        got = {user: variant_of(peers.get_llm("reasoning", user_id=user)) for user in USERS}
        assert got == {user: expected(peers, user) for user in USERS}
        assert {user: variant_of(other.get_llm("reasoning", user_id=user)) for user in USERS} == got
        assert set(got.values()) == {MAIN, "claude"}  # 40 users: both halves are taken
        for user in USERS[:4]:
            answer = peers.get_llm("reasoning", user_id=user).invoke("hi").content
            assert answer == (ANTHROPIC_ANSWER if got[user] == "claude" else OPENAI_ANSWER)
        # The effective configuration says which variant each user gets.
        assert {user: peers.config.effective(user)["reasoning"].variant for user in USERS} == got
    finally:
        other.close()


def test_calls_without_a_user_id_are_split_by_weight_call_by_call(
    peers: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    split(peers, main=3, claude=1)
    llm = peers.get_llm("reasoning")
    assert isinstance(llm, VariantChatModel)
    answers = Counter(str(llm.invoke("hi").content) for _ in range(160))
    assert set(answers) == {OPENAI_ANSWER, ANTHROPIC_ANSWER}
    assert 0.12 < answers[ANTHROPIC_ANSWER] / 160 < 0.40  # 1 in 4 expected
    assert len(anthropic_peer.requests_to("/v1/messages")) == answers[ANTHROPIC_ANSWER]
    assert len(openai_peer.requests_to("/v1/chat/completions")) == answers[OPENAI_ANSWER]


def test_usage_names_the_variant_and_compares_variants_side_by_side(peers: LLMConfigService) -> None:
    split(peers)
    peers.config.set_global("tools", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t")
    for user in USERS[:20]:
        peers.get_llm("reasoning", user_id=user).invoke("three little words")
    split_llm = peers.get_llm("reasoning")
    for _ in range(10):
        split_llm.invoke("two words")
    peers.get_llm("tools").invoke("hi")
    assert peers.usage_recorder.flush()

    report = peers.usage.report(group_by=["interaction_type", "variant"])
    groups = {tuple(g.keys): g for g in report.groups}
    assert set(groups) <= {("reasoning", MAIN), ("reasoning", "claude"), ("tools", "(none)")}
    assert groups[("tools", "(none)")].calls == 1  # an entry without variants records none
    users_in_claude = sum(expected(peers, user) == "claude" for user in USERS[:20])
    by_model = {g.key: g.calls for g in peers.usage.report(group_by="model").groups}
    assert groups[("reasoning", "claude")].calls == by_model["claude-haiku-4-5"] >= users_in_claude
    assert groups[("reasoning", MAIN)].calls == by_model["gpt-4o"] >= 20 - users_in_claude
    assert groups[("reasoning", MAIN)].calls + groups[("reasoning", "claude")].calls == 30
    for group in groups.values():
        assert group.errors == 0 and group.latency_p50_ms > 0 and group.latency_p95_ms >= group.latency_p50_ms
        tokens = group.prompt_tokens + group.completion_tokens
        assert group.tokens_per_call == pytest.approx(tokens / group.calls, abs=0.01)
        assert group.cost_per_call_usd == pytest.approx(group.cost_usd / group.calls, rel=1e-6)
    # Users are recorded with the variant they were assigned.
    per_user = peers.usage.report(group_by=["user", "variant"])
    assert {tuple(g.keys) for g in per_user.groups if g.keys[0] in USERS} == {
        (user, expected(peers, user)) for user in USERS[:20]
    }


def test_the_split_model_keeps_tools_structured_output_streams_batches_and_agents(
    peers: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    split(peers)
    llm = peers.get_llm("reasoning")
    calls = 16
    for peer in (openai_peer, anthropic_peer):
        peer.script(*[ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]) for _ in range(calls)])
    bound = llm.bind_tools([get_weather])
    for _ in range(calls):
        message = bound.invoke("weather?")
        assert isinstance(message, AIMessage)
        assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Oslo"})]
    # Each provider got the tools in its own format.
    sent_openai = openai_peer.requests_to("/v1/chat/completions")
    sent_anthropic = anthropic_peer.requests_to("/v1/messages")
    assert sent_openai and sent_anthropic and len(sent_openai) + len(sent_anthropic) == calls
    assert sent_openai[0].json["tools"][0]["function"]["name"] == "get_weather"
    assert sent_anthropic[0].json["tools"][0]["name"] == "get_weather"
    for peer in (openai_peer, anthropic_peer):
        peer.reset()  # the replies the other half of the calls left queued

    class City(BaseModel):
        name: str
        country: str

    for peer in (openai_peer, anthropic_peer):
        peer.script(ScriptedReply(tool_calls=[ToolCall("City", {"name": "Oslo", "country": "Norway"})]))
    assert llm.with_structured_output(City).invoke("Oslo?") == City(name="Oslo", country="Norway")
    for peer in (openai_peer, anthropic_peer):
        peer.reset()

    assert "".join(str(chunk.content) for chunk in llm.stream("hi")) in (OPENAI_ANSWER, ANTHROPIC_ANSWER)
    assert {str(m.content) for m in llm.batch(["a", "b", "c"])} <= {OPENAI_ANSWER, ANTHROPIC_ANSWER}

    # Whichever variant each turn goes to, its peer first calls the tool, then answers.
    for peer in (openai_peer, anthropic_peer):
        peer.script(
            ScriptedReply(tool_calls=[ToolCall("get_weather", {"city": "Bergen"})]), ScriptedReply(text="Sunny.")
        )
    agent = create_agent(llm, tools=[get_weather])
    result = agent.invoke({"messages": [HumanMessage("Weather in Bergen?")]})
    assert result["messages"][-1].content == "Sunny."
    assert "It is sunny in Bergen" in [m.content for m in result["messages"] if m.type == "tool"]


async def test_the_split_model_works_asynchronously(peers: LLMConfigService) -> None:
    split(peers)
    llm = await peers.aget_llm("reasoning")
    assert (await llm.ainvoke("hi")).content in (OPENAI_ANSWER, ANTHROPIC_ANSWER)
    assert "".join([str(c.content) async for c in llm.astream("hi")]) in (OPENAI_ANSWER, ANTHROPIC_ANSWER)
    assert {str(m.content) for m in await llm.abatch(["a", "b"])} <= {OPENAI_ANSWER, ANTHROPIC_ANSWER}


def test_fallbacks_apply_per_variant(peers: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    dead, _ = peers.providers.add(
        ProviderCreate(name="dead", provider_type="custom", api_base_url=f"http://127.0.0.1:{free_tcp_port()}/v1"),
        validate=False,
    )
    peers.config.set_global(
        "reasoning",
        ConfigUpdate.model_validate(
            {
                "provider_id": "claude",
                "model_name": "claude-haiku-4-5",
                "variants": [
                    {
                        "name": "down",
                        "provider_id": dead.id,
                        "model_name": "gpt-4o",
                        "weight": 100,
                        "fallbacks": [{"provider_id": "local", "model_name": "gpt-4o-mini"}],
                    }
                ],
            }
        ),
        actor="t",
    )
    entry = peers.config.get_entry("reasoning")
    down = next(user for user in USERS if choose(entry, user) == "down")
    own = next(user for user in USERS if choose(entry, user) == MAIN)
    assert peers.get_llm("reasoning", user_id=down).invoke("hi").content == OPENAI_ANSWER
    assert openai_peer.requests_to("/v1/chat/completions")[-1].json["model"] == "gpt-4o-mini"
    assert peers.get_llm("reasoning", user_id=own).invoke("hi").content == ANTHROPIC_ANSWER
    assert peers.usage_recorder.flush()
    by_variant = {tuple(g.keys): g.calls for g in peers.usage.report(group_by=["variant", "model"]).groups}
    assert by_variant == {("down", "gpt-4o-mini"): 1, (MAIN, "claude-haiku-4-5"): 1}


def test_embeddings_variants_are_sticky_per_user_and_split_without_one(peers: LLMConfigService) -> None:
    peers.config.set_global(
        "embeddings",
        ConfigUpdate.model_validate(
            {
                "provider_id": "local",
                "model_name": "text-embedding-3-small",
                "variants": [
                    {
                        "name": "small",
                        "provider_id": "local",
                        "model_name": "text-embedding-3-small",
                        "extra_params": {"dimensions": 3},
                        "weight": 100,
                    }
                ],
            }
        ),
        actor="t",
    )
    entry = peers.config.get_entry("embeddings")
    for user in USERS[:10]:
        vector = peers.get_embeddings(user_id=user).embed_query("hi")
        assert (len(vector) == 3) == (choose(entry, user) == "small")
    embeddings = peers.get_embeddings()
    assert isinstance(embeddings, VariantEmbeddings)
    sizes = Counter(len(embeddings.embed_query("hi")) for _ in range(40))
    assert len(sizes) == 2 and sizes[3] > 0
    assert peers.usage_recorder.flush()
    variants = {g.key for g in peers.usage.report(group_by="variant").groups}
    assert variants == {MAIN, "small"}
