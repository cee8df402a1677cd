"""Several keys per provider, through ``get_llm`` in local mode: rotation, rest after 429/401, usage by key.

The loopback peers accept two keys and answer 429 (with Retry-After) or 401 to one of them; they record the
key each request carried. On SQLite and PostgreSQL, through the real SDKs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.db.engine import transaction
from llmconfig.db.models import UsageRecord
from llmconfig.providers import ProviderCreate
from llmconfig.providers.schemas import ProviderKeyCreate
from tests.cli_helpers import stored_bytes
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.peers.base import BasePeer

SECOND_OPENAI_KEY = "sk-canary-second-openai-4c1d8e2f"
SECOND_ANTHROPIC_KEY = "sk-ant-canary-second-9e7a3b51"
CHAT_PATHS = {"custom": "/v1/chat/completions", "anthropic": "/v1/messages"}


def two_keys(
    service: LLMConfigService, peer: BasePeer, *, provider_type: str = "custom", first: str, second: str
) -> None:
    """Provider ``p`` at ``peer`` with keys ``first`` then ``second`` (both accepted), answering reasoning."""
    peer.accepted_keys.add(second)
    service.providers.add(
        ProviderCreate(
            name="p",
            provider_type=provider_type,  # type: ignore[arg-type]
            api_base_url=peer.root_url,
            api_key=SecretStr(first),
        ),
        validate=False,
    )
    service.providers.keys.add("p", ProviderKeyCreate(api_key=SecretStr(second)), actor="t")
    model = "claude-haiku-4-5" if provider_type == "anthropic" else "gpt-4o"
    service.config.set_global("reasoning", ConfigUpdate(provider_id="p", model_name=model), actor="t")
    if provider_type != "anthropic":
        service.config.set_global(
            "embeddings", ConfigUpdate(provider_id="p", model_name="text-embedding-3-small"), actor="t"
        )


def usage_hints(service: LLMConfigService) -> list[str | None]:
    assert service.flush_usage()
    with transaction(service.sessions) as session:
        return list(session.scalars(select(UsageRecord.key_hint).order_by(UsageRecord.id)))


def chat(llm: Any, how: str) -> str:
    if how == "invoke":
        return str(llm.invoke("hi").content)
    if how == "stream":
        return "".join(str(chunk.content) for chunk in llm.stream("hi"))

    async def run() -> str:
        if how == "ainvoke":
            return str((await llm.ainvoke("hi")).content)
        return "".join([str(chunk.content) async for chunk in llm.astream("hi")])

    return asyncio.run(run())


PEERS: dict[str, tuple[str, str, str]] = {
    # provider type -> (peer fixture, first key, second key)
    "custom": ("openai_peer", OPENAI_PEER_KEY, SECOND_OPENAI_KEY),
    "anthropic": ("anthropic_peer", ANTHROPIC_PEER_KEY, SECOND_ANTHROPIC_KEY),
}


@pytest.fixture(params=sorted(PEERS))
def keyed(request: pytest.FixtureRequest, service: LLMConfigService) -> tuple[BasePeer, str, str, str]:
    """(peer, provider type, first key, second key): a provider with two keys configured for reasoning."""
    fixture, first, second = PEERS[request.param]
    peer: BasePeer = request.getfixturevalue(fixture)
    two_keys(service, peer, provider_type=request.param, first=first, second=second)
    return peer, request.param, first, second


def test_calls_take_the_keys_in_turn_and_usage_names_each_by_its_hint(
    service: LLMConfigService, keyed: tuple[BasePeer, str, str, str]
) -> None:
    peer, provider_type, first, second = keyed
    llm = service.get_llm("reasoning")
    for _ in range(4):
        chat(llm, "invoke")
    assert peer.keys_sent(CHAT_PATHS[provider_type]) == [first, second, first, second]
    assert usage_hints(service) == [first[-4:], second[-4:]] * 2
    assert [key.hint for key in service.providers.keys.list("p")] == [first[-4:], second[-4:]]


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
def test_a_rate_limited_key_rests_and_the_same_call_is_answered_with_the_other_key(
    service: LLMConfigService, keyed: tuple[BasePeer, str, str, str], how: str
) -> None:
    peer, provider_type, first, second = keyed
    peer.answer_key(first, 429, retry_after="30")
    llm = service.get_llm("reasoning")

    assert chat(llm, how).startswith("Hello from")
    # One call: the 429 of the first key, then at once the second key (no wait for the SDK's back-off).
    assert peer.keys_sent(CHAT_PATHS[provider_type]) == [first, second]
    assert [r.status for r in peer.requests_to(CHAT_PATHS[provider_type])] == [429, 200]

    # The resting key is not tried again while it rests; the object handed out is the same one.
    for _ in range(3):
        chat(service.get_llm("reasoning"), how)
    assert service.get_llm("reasoning") is llm
    assert peer.keys_sent(CHAT_PATHS[provider_type]) == [first, second, second, second, second]
    assert usage_hints(service) == [second[-4:]] * 4

    listed = {key.hint: key.resting_until for key in service.providers.keys.list("p")}
    resting = listed[first[-4:]]
    assert resting is not None and timedelta(seconds=20) < resting - datetime.now(UTC) <= timedelta(seconds=31)
    assert listed[second[-4:]] is None


def test_a_rejected_key_moves_to_the_other_key_and_rests_longer(
    service: LLMConfigService, keyed: tuple[BasePeer, str, str, str]
) -> None:
    peer, provider_type, first, second = keyed
    peer.answer_key(first, 401)

    for _ in range(3):
        assert chat(service.get_llm("reasoning"), "invoke").startswith("Hello from")

    assert peer.keys_sent(CHAT_PATHS[provider_type]) == [first, second, second, second]
    assert usage_hints(service) == [second[-4:]] * 3
    resting = {key.hint: key.resting_until for key in service.providers.keys.list("p")}[first[-4:]]
    assert resting is not None and resting - datetime.now(UTC) > timedelta(minutes=5)


def test_a_key_is_taken_again_once_its_rest_is_over(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    two_keys(service, openai_peer, first=OPENAI_PEER_KEY, second=SECOND_OPENAI_KEY)
    openai_peer.answer_key(OPENAI_PEER_KEY, 429, retry_after="3")
    llm = service.get_llm("reasoning")
    chat(llm, "invoke")
    openai_peer.answer_key(OPENAI_PEER_KEY, None)
    chat(llm, "invoke")  # within the rest: the second key
    time.sleep(3.2)
    chat(llm, "invoke")
    chat(llm, "invoke")
    assert openai_peer.keys_sent("/v1/chat/completions") == [
        OPENAI_PEER_KEY,
        SECOND_OPENAI_KEY,
        SECOND_OPENAI_KEY,
        OPENAI_PEER_KEY,
        SECOND_OPENAI_KEY,
    ]


def test_while_every_key_is_rate_limited_the_sdk_retries_and_its_retries_take_the_keys_in_turn(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    import openai

    two_keys(service, openai_peer, first=OPENAI_PEER_KEY, second=SECOND_OPENAI_KEY)
    for key in (OPENAI_PEER_KEY, SECOND_OPENAI_KEY):
        openai_peer.answer_key(key, 429, retry_after="0")
    with pytest.raises(openai.RateLimitError):
        service.get_llm("reasoning").invoke("hi")
    sent = openai_peer.keys_sent("/v1/chat/completions")
    # Each attempt of the SDK tries both keys before it sees the 429; its retries do the same.
    assert len(sent) >= 4 and sent == [OPENAI_PEER_KEY, SECOND_OPENAI_KEY] * (len(sent) // 2)
    assert usage_hints(service) == [SECOND_OPENAI_KEY[-4:]]


def test_embeddings_rotate_too_and_usage_names_the_key(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    two_keys(service, openai_peer, first=OPENAI_PEER_KEY, second=SECOND_OPENAI_KEY)
    openai_peer.answer_key(OPENAI_PEER_KEY, 429)
    embeddings = service.get_embeddings()
    assert len(embeddings.embed_query("hi")) == openai_peer.embedding_dimensions
    assert len(asyncio.run(embeddings.aembed_query("hi"))) == openai_peer.embedding_dimensions
    assert openai_peer.keys_sent("/v1/embeddings") == [OPENAI_PEER_KEY, SECOND_OPENAI_KEY, SECOND_OPENAI_KEY]
    assert usage_hints(service) == [SECOND_OPENAI_KEY[-4:]] * 2


def test_a_fallback_member_tries_its_other_key_before_the_chain_moves_on(
    service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    two_keys(service, openai_peer, first=OPENAI_PEER_KEY, second=SECOND_OPENAI_KEY)
    service.providers.add(
        ProviderCreate(
            name="claude",
            provider_type="anthropic",
            api_base_url=anthropic_peer.root_url,
            api_key=SecretStr(ANTHROPIC_PEER_KEY),
        ),
        validate=False,
    )
    service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id="p",
            model_name="gpt-4o",
            fallbacks=[{"provider_id": "claude", "model_name": "claude-haiku-4-5"}],  # type: ignore[list-item]
        ),
        actor="t",
    )
    openai_peer.answer_key(OPENAI_PEER_KEY, 429)
    assert chat(service.get_llm("reasoning"), "invoke") == "Hello from openai-peer"
    assert openai_peer.keys_sent("/v1/chat/completions") == [OPENAI_PEER_KEY, SECOND_OPENAI_KEY]
    assert anthropic_peer.requests_to("/v1/messages") == []
    assert usage_hints(service) == [SECOND_OPENAI_KEY[-4:]]


def test_key_changes_reach_the_models_and_a_removed_key_is_never_sent_again(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    service.providers.add(
        ProviderCreate(
            name="p", provider_type="custom", api_base_url=openai_peer.root_url, api_key=SecretStr(OPENAI_PEER_KEY)
        ),
        validate=False,
    )
    service.config.set_global("reasoning", ConfigUpdate(provider_id="p", model_name="gpt-4o"), actor="t")
    chat(service.get_llm("reasoning"), "invoke")
    version = service.providers.get("p").version

    openai_peer.accepted_keys.add(SECOND_OPENAI_KEY)
    added = service.providers.keys.add("p", ProviderKeyCreate(api_key=SecretStr(SECOND_OPENAI_KEY)), actor="t")
    assert added.hint == SECOND_OPENAI_KEY[-4:] and service.providers.get("p").version == version + 1
    chat(service.get_llm("reasoning"), "invoke")
    chat(service.get_llm("reasoning"), "invoke")
    first_id = service.providers.keys.list("p")[0].key_id
    service.providers.keys.remove("p", first_id, actor="t")
    for _ in range(2):
        chat(service.get_llm("reasoning"), "invoke")
    sent = openai_peer.keys_sent("/v1/chat/completions")
    assert sent[:1] == [OPENAI_PEER_KEY] and sent[-2:] == [SECOND_OPENAI_KEY, SECOND_OPENAI_KEY]
    assert set(sent[1:3]) == {OPENAI_PEER_KEY, SECOND_OPENAI_KEY}
    public = service.providers.get("p")
    assert public.has_api_key and public.api_key_hint == SECOND_OPENAI_KEY[-4:]
    actions = [entry.action for entry in service.audit.entries(limit=10)]
    assert "provider.key.add" in actions and "provider.key.remove" in actions
    trail = "".join(entry.model_dump_json() for entry in service.audit.entries(limit=50))
    for key in (OPENAI_PEER_KEY, SECOND_OPENAI_KEY):
        assert key not in trail and key.encode() not in stored_bytes(service.settings.database_url)


def test_the_key_pool_of_a_resolved_target_is_the_one_get_llm_calls_with(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    """What the OpenAI-compatible face uses: a rest it reports is honoured by get_llm's objects, and back."""
    two_keys(service, openai_peer, first=OPENAI_PEER_KEY, second=SECOND_OPENAI_KEY)
    openai_peer.answer_key(OPENAI_PEER_KEY, 429, retry_after="30")
    chat(service.get_llm("reasoning"), "invoke")  # the first key now rests

    (target,) = service.resolve("reasoning").targets
    pool = service.key_pool(target)
    key = pool.choose()
    assert key is not None and key.value == SECOND_OPENAI_KEY
    assert pool.credentials(key) == {"authorization": f"Bearer {SECOND_OPENAI_KEY}"}
    # The caller reports a 429 to the second key (its own HTTP client got it): both keys rest now, so get_llm
    # takes the one back first, the first key (its rest began earlier).
    assert pool.observe(key, 429, {"retry-after": "60"})
    openai_peer.answer_key(OPENAI_PEER_KEY, None)
    chat(service.get_llm("reasoning"), "invoke")
    assert openai_peer.keys_sent("/v1/chat/completions")[-1] == OPENAI_PEER_KEY
