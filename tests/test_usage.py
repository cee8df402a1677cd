"""Usage tracking: every call through get_llm / get_embeddings becomes a record with the peer's token counts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate, FallbackTarget
from llmconfig.providers import ProviderCreate
from llmconfig.tokens import TokenService
from llmconfig.usage import PriceUpdate, UsageEvent, UsageRecorder
from llmconfig.usage.recorder import DatabaseSink
from llmconfig.usage.service import UsageGroup
from tests.helpers import configure_reasoning, free_tcp_port
from tests.peers import OpenAIPeer


@pytest.fixture
def configured(service: LLMConfigService, openai_peer: OpenAIPeer) -> LLMConfigService:
    configure_reasoning(service, openai_peer)
    service.config.set_global(
        "embeddings", ConfigUpdate(provider_id="local", model_name="text-embedding-3-small"), actor="t"
    )
    return service


def groups(service: LLMConfigService, group_by: str = "model") -> dict[str, UsageGroup]:
    assert service.usage_recorder.flush()
    report = service.usage.report(group_by=group_by)  # type: ignore[arg-type]
    return {g.key: g for g in report.groups}


def test_chat_calls_are_recorded_with_the_peers_token_counts_and_cost(configured: LLMConfigService) -> None:
    answer = configured.get_llm("reasoning", user_id="u-1").invoke("three little words")
    usage = answer.usage_metadata
    assert usage is not None

    group = groups(configured)["gpt-4o"]
    assert (group.calls, group.errors) == (1, 0)
    assert group.prompt_tokens == usage["input_tokens"] == 3
    assert group.completion_tokens == usage["output_tokens"] == 3  # "Hello from openai-peer"
    # gpt-4o's list price is seeded: $2.50 in, $10.00 out per million tokens.
    assert group.cost_usd == pytest.approx((3 * 2.50 + 3 * 10.00) / 1_000_000)
    assert group.latency_p50_ms > 0
    assert set(groups(configured, "user")) == {"u-1"}
    assert set(groups(configured, "provider")) == {"local"}
    assert set(groups(configured, "interaction_type")) == {"reasoning"}


def test_streaming_calls_are_recorded_with_their_usage(configured: LLMConfigService) -> None:
    chunks = list(configured.get_llm("reasoning").stream("two words"))
    assert "".join(str(c.content) for c in chunks) == "Hello from openai-peer"
    group = groups(configured)["gpt-4o"]
    assert (group.calls, group.prompt_tokens, group.completion_tokens) == (1, 2, 3)


async def test_async_calls_are_recorded(configured: LLMConfigService) -> None:
    llm = await configured.get_llm_for_interaction("reasoning")
    await llm.ainvoke("one")
    embeddings = await configured.get_embeddings_model()
    await embeddings.aembed_documents(["alpha beta", "gamma"])
    found = groups(configured)
    assert found["gpt-4o"].calls == 1
    assert found["text-embedding-3-small"].prompt_tokens == 3


def test_embeddings_calls_are_recorded_with_the_peers_prompt_tokens(configured: LLMConfigService) -> None:
    embeddings = configured.get_embeddings()
    embeddings.embed_documents(["one two", "three four five"])
    embeddings.embed_query("six")
    group = groups(configured)["text-embedding-3-small"]
    assert (group.calls, group.prompt_tokens, group.completion_tokens) == (2, 6, 0)
    assert group.cost_usd == pytest.approx(6 * 0.02 / 1_000_000)


def test_failed_calls_are_recorded_with_their_error_class(
    configured: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    openai_peer.behaviour = "error500"
    llm = configured.get_llm("reasoning").model_copy(update={"max_retries": 0})
    with pytest.raises(Exception, match="500|Internal|error"):
        llm.invoke("hi")
    group = groups(configured)["gpt-4o"]
    assert (group.calls, group.errors) == (1, 1)


def test_a_fallback_call_is_recorded_against_the_model_that_answered(
    configured: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    dead, _ = configured.providers.add(
        ProviderCreate(name="dead", provider_type="custom", api_base_url=f"http://127.0.0.1:{free_tcp_port()}/v1"),
        validate=False,
    )
    configured.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id=dead.id,
            model_name="gpt-4o",
            fallbacks=[FallbackTarget(provider_id="local", model_name="gpt-4o-mini")],
        ),
        actor="t",
    )
    llm = configured.get_llm("reasoning")
    llm.invoke("hi")
    list(llm.stream("hi"))
    assert {k: g.calls for k, g in groups(configured, "provider").items()} == {"local": 2}
    assert set(groups(configured)) == {"gpt-4o-mini"}


def test_recording_never_fails_a_call(configured: LLMConfigService, settings_factory: object) -> None:
    # A recorder whose database is gone: calls still succeed, the records are dropped.
    from llmconfig.db import create_db_engine, make_sessionmaker

    dead = make_sessionmaker(create_db_engine(f"postgresql+psycopg://x@127.0.0.1:{free_tcp_port()}/none"))
    services = configured.services
    services.usage_recorder = UsageRecorder(DatabaseSink(dead))
    recording_nowhere = LLMConfigService(services=services)
    assert recording_nowhere.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
    assert services.usage_recorder.flush()


def test_recorder_keeps_calls_apart_by_day(configured: LLMConfigService) -> None:
    now = datetime.now(UTC)
    for days_ago in (0, 0, 1):
        configured.usage_recorder.record(
            UsageEvent(
                at=now - timedelta(days=days_ago),
                interaction_type="reasoning",
                user_id=None,
                provider_id=None,
                provider_name="local",
                model_name="gpt-4o",
                prompt_tokens=10,
                completion_tokens=5,
                latency_ms=100.0 + days_ago,
                success=True,
                error_class=None,
            )
        )
    by_day = groups(configured, "day")
    assert [g.calls for g in by_day.values()] == [1, 2]
    report = configured.usage.report(group_by="model", since=now - timedelta(hours=1))
    assert report.groups[0].calls == 2
    combined = configured.usage.report(group_by=["day", "interaction_type"])
    assert [(g.keys[1], g.calls) for g in combined.groups] == [("reasoning", 1), ("reasoning", 2)]
    assert combined.groups[1].key == f"{now.date().isoformat()} / reasoning"


def test_usage_and_prices_over_http(configured: LLMConfigService) -> None:
    admin, _ = TokenService(sessions=configured.sessions).create(role="admin", name="a")
    headers = {"Authorization": f"Bearer {admin}"}
    configured.get_llm("reasoning").invoke("hi")
    configured.usage_recorder.flush()
    with TestClient(create_app(configured.settings, service=configured)) as client:
        prices = {p["model_name"]: p for p in client.get("/api/v1/llm/prices", headers=headers).json()}
        assert prices["gpt-4o-mini"]["input_per_million"] == 0.15

        changed = client.put(
            "/api/v1/llm/prices/local-chat",
            json={"input_per_million": 1.0, "output_per_million": 2.0},
            headers=headers,
        )
        assert changed.status_code == 200 and changed.json()["version"] == 1
        assert (
            client.put(
                "/api/v1/llm/prices/local-chat",
                json={"input_per_million": -1, "output_per_million": 2.0},
                headers=headers,
            ).status_code
            == 422
        )

        report = client.get("/api/v1/llm/usage", params={"group_by": "model"}, headers=headers)
        assert report.status_code == 200
        assert report.json()["groups"][0]["key"] == "gpt-4o" and report.json()["groups"][0]["calls"] == 1
        bad = client.get("/api/v1/llm/usage", params={"group_by": "colour"}, headers=headers)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    configured.usage.set_price("gpt-4o", PriceUpdate(input_per_million=3.0, output_per_million=12.0))
    assert {p.model_name: p.input_per_million for p in configured.usage.prices()}["gpt-4o"] == 3.0


def test_events_recorded_while_calls_go_on_are_written_in_a_few_transactions(service: LLMConfigService) -> None:
    from sqlalchemy import event

    from llmconfig.db.models import utcnow

    commits: list[int] = []
    event.listen(service.engine, "commit", lambda _connection: commits.append(1))
    recorder = UsageRecorder(DatabaseSink(service.sessions))
    for index in range(40):  # one call every 2.5 ms, as a busy gateway records them
        recorder.record(
            UsageEvent(
                at=utcnow(),
                interaction_type="reasoning",
                user_id=f"u-{index}",
                provider_id=None,
                provider_name="p",
                model_name="m",
                prompt_tokens=1,
                completion_tokens=1,
                latency_ms=1.0,
                success=True,
                error_class=None,
            )
        )
        time.sleep(0.0025)
    assert recorder.flush()
    report = service.usage.report(group_by="model")
    assert report.groups[0].calls == 40
    # The thread gathers what comes within a moment into one transaction instead of waking for every event.
    assert len(commits) <= 4
