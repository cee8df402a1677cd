"""Budgets: set over REST, counted from the usage of every process, enforced before a call leaves."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate, GroupMembershipUpdate
from llmconfig.errors import BudgetExceededError, ConflictError
from llmconfig.providers.schemas import ProviderKeyCreate
from llmconfig.settings import Settings
from llmconfig.usage.budgets import BudgetUpdate
from tests.api.conftest import API, problem_of
from tests.helpers import OPENAI_PEER_KEY, add_peer_providers
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.processes import AgentProcess, ServeProcess, agent_for, clean_environment, client_token, configure

# The peer answers every call with a few tokens ("Hello from openai-peer"): a budget of this many tokens is
# spent after one or two calls.
SMALL = 10


@pytest.fixture
def budgeted(
    migrated_database_url: str,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> Iterator[LLMConfigService]:
    """reasoning on the OpenAI peer, tools on the Anthropic one; spend read again every 0.1 s."""
    service = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=0, budget_refresh=0.1))
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    service.config.set_global("tools", ConfigUpdate(provider_id="claude", model_name="claude-haiku-4-5"), actor="t")
    try:
        yield service
    finally:
        service.close()


def spend_until(service: LLMConfigService, exceeded: Callable[[], bool], *, calls: int = 20) -> None:
    """Call reasoning until ``exceeded()`` (the meter read the spend again), at most ``calls`` times."""
    for _ in range(calls):
        service.get_llm("reasoning").invoke("hi")
        assert service.flush_usage()
        service.services.spend.read()
        if exceeded():
            return
    raise AssertionError("the budget was never spent")


def test_a_spent_budget_fails_calls_before_they_reach_the_provider(
    budgeted: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    budgeted.budgets.set("type:reasoning", BudgetUpdate(period="day", limit_tokens=SMALL), actor="t")
    llm = budgeted.get_llm("reasoning")  # held across the spending, as agents do
    spend_until(budgeted, lambda: budgeted.services.spend.spent("type:reasoning") is not None)
    sent = len(openai_peer.requests_to("/v1/chat/completions"))
    with pytest.raises(BudgetExceededError, match="daily budget of type:reasoning is spent") as caught:
        llm.invoke("hi")
    assert caught.value.scope == "type:reasoning"
    with pytest.raises(BudgetExceededError):
        budgeted.get_llm("reasoning").invoke("hi")
    assert len(openai_peer.requests_to("/v1/chat/completions")) == sent  # nothing left the process
    # Other types are not held back, and raising the limit lets calls through again.
    assert budgeted.get_llm("tools").invoke("hi").content == "Hello from anthropic-peer"
    budgeted.budgets.set("type:reasoning", BudgetUpdate(period="day", limit_tokens=10_000), actor="t")
    budgeted.services.spend.read()
    assert llm.invoke("hi").content == "Hello from openai-peer"


def test_a_spent_budget_with_an_on_exceed_model_sends_calls_there(
    budgeted: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    budgeted.budgets.set(
        "user:u-7",
        BudgetUpdate(
            period="hour", limit_tokens=SMALL, on_exceed={"provider_id": "local", "model_name": "gpt-4o-mini"}
        ),
        actor="t",
    )
    llm = budgeted.get_llm("reasoning", user_id="u-7")
    for _ in range(20):
        llm.invoke("hi")
        assert budgeted.flush_usage()
        budgeted.services.spend.read()
        if budgeted.services.spend.spent("user:u-7"):
            break
    llm.invoke("hi")
    assert openai_peer.requests_to("/v1/chat/completions")[-1].json["model"] == "gpt-4o-mini"
    # Someone else's calls still go to the configured model.
    budgeted.get_llm("reasoning", user_id="u-8").invoke("hi")
    assert openai_peer.requests_to("/v1/chat/completions")[-1].json["model"] == "gpt-4o"
    assert budgeted.flush_usage()
    models = {g.key: g.calls for g in budgeted.usage.report(group_by=["user", "model"]).groups}
    assert models.get("u-7 / gpt-4o-mini") == 1  # usage names the model that really answered


def test_budgets_over_rest_report_spend_and_refuse_bad_input(
    budgeted: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    admin, _ = budgeted.tokens.create(role="admin", name="admin")
    headers = {"Authorization": f"Bearer {admin}"}
    with TestClient(create_app(budgeted.settings, service=budgeted)) as client:
        made = client.put(f"{API}/budgets/provider:local", json={"period": "month", "limit_usd": 5}, headers=headers)
        assert made.status_code == 200, made.text
        provider_id = budgeted.providers.get("local").id
        assert made.json()["scope"] == f"provider:{provider_id}"  # a provider named by name is kept by id
        budgeted.get_llm("reasoning").invoke("hi")
        assert budgeted.flush_usage()
        [listed] = client.get(f"{API}/budgets", headers=headers).json()
        assert listed["spent_tokens"] > 0 and listed["exceeded"] is False
        assert listed["period_start"].endswith("T00:00:00Z") and listed["period_start"][8:10] == "01"

        for scope, body, words in (
            ("type:reasoning", {"period": "day"}, "needs a limit"),
            ("team:a", {"period": "day", "limit_usd": 1}, "Unknown budget scope"),
            ("type:dreaming", {"period": "day", "limit_usd": 1}, "Unknown interaction type"),
            ("group:ops", {"period": "day", "limit_usd": 1}, "No group 'ops'"),
            ("group:Bad%0Aname", {"period": "day", "limit_usd": 1}, "control characters"),
            (
                "type:reasoning",
                {
                    "period": "day",
                    "limit_usd": 1,
                    "on_exceed": {"provider_id": "local", "model_name": "text-embedding-3-small"},
                },
                "takes chat models",
            ),
            ("type:reasoning", {"period": "week", "limit_usd": 1}, "period"),
            ("type:reasoning", {"period": "day", "limit_usd": -1}, "limit_usd"),
        ):
            refused = client.put(f"{API}/budgets/{scope}", json=body, headers=headers)
            assert refused.status_code == 422, (scope, body, refused.text)
            assert words in problem_of(refused)["detail"], problem_of(refused)["detail"]
        assert [b["scope"] for b in client.get(f"{API}/budgets", headers=headers).json()] == [f"provider:{provider_id}"]
        assert client.delete(f"{API}/budgets/provider:local", headers=headers).status_code == 204
        assert client.get(f"{API}/budgets", headers=headers).json() == []
        assert client.delete(f"{API}/budgets/provider:local", headers=headers).status_code == 404


def test_a_group_budget_counts_its_members_and_holds_back_each_of_them(
    budgeted: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    """A team's budget: what any member spends counts, every member is held back, others are not."""
    for user in ("ann", "bob"):
        budgeted.groups.set_membership(user, GroupMembershipUpdate(groups=["team-a"]), actor="t")
    budgeted.budgets.set("group:team-a", BudgetUpdate(period="day", limit_tokens=SMALL), actor="t")
    assert budgeted.get_llm("reasoning", user_id="outsider").invoke("hi")  # not a member: not counted
    for _ in range(20):  # only ann spends
        budgeted.get_llm("reasoning", user_id="ann").invoke("hi")
        assert budgeted.flush_usage()
        budgeted.services.spend.read()
        if budgeted.services.spend.spent("group:team-a") is not None:
            break
    [info] = budgeted.budgets.list()
    assert info.exceeded and info.spent_tokens >= SMALL
    sent = len(openai_peer.requests_to("/v1/chat/completions"))
    with pytest.raises(BudgetExceededError, match="group:team-a"):
        budgeted.get_llm("reasoning", user_id="bob").invoke("hi")  # bob never spent: the team did
    assert len(openai_peer.requests_to("/v1/chat/completions")) == sent
    assert budgeted.get_llm("reasoning", user_id="outsider").invoke("hi").content == "Hello from openai-peer"
    # A group a budget names cannot be deleted from under it.
    with pytest.raises(ConflictError, match="budget of group:team-a"):
        budgeted.groups.delete("team-a", actor="t")
    assert budgeted.groups.membership("bob").groups == ["team-a"]
    # Leaving the team lifts the team's budget from that user.
    budgeted.groups.set_membership("bob", GroupMembershipUpdate(groups=[]), actor="t")
    assert budgeted.get_llm("reasoning", user_id="bob").invoke("hi").content == "Hello from openai-peer"


def test_a_budget_spent_by_one_process_holds_back_another(
    migrated_database_url: str, tmp_path: Path, budgeted: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    budgeted.budgets.set("type:reasoning", BudgetUpdate(period="day", limit_tokens=SMALL), actor="t")
    env = clean_environment(
        LLMCONFIG_DATABASE_URL=migrated_database_url,
        LLMCONFIG_MASTER_KEY_FILE=str(budgeted.settings.master_key_file),
    )
    spender, other = AgentProcess(env, tmp_path), AgentProcess(env, tmp_path)
    try:
        assert other.ask("invoke", "reasoning", "-") == "Hello from openai-peer"
        answer: dict[str, Any] = {"ok": True}
        for _ in range(20):
            answer = spender.answer("invoke", "reasoning", "-")
            if not answer["ok"]:
                break
            spender.ask("flush")
            time.sleep(0.3)
        assert answer["error"] == "BudgetExceededError", answer
        # The other process learns it from the usage table within its refresh interval (2 s by default).
        deadline = time.monotonic() + 10
        while (answer := other.answer("invoke", "reasoning", "-"))["ok"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert answer["error"] == "BudgetExceededError", answer
    finally:
        spender.stop()
        other.stop()


def test_client_mode_processes_are_held_back_by_the_servers_budgets(
    tmp_path: Path, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    (tmp_path / "server").mkdir()
    server = ServeProcess(
        f"sqlite:///{tmp_path}/server/llmconfig.db", tmp_path / "server", LLMCONFIG_BUDGET_REFRESH="0.2"
    ).start()
    try:
        configure(server, openai_peer, anthropic_peer)
        assert (
            server.api("PUT", "/budgets/type:reasoning", json={"period": "day", "limit_tokens": SMALL}).status_code
            == 200
        )
        agent = agent_for(server.url, client_token(server), tmp_path, LLMCONFIG_BUDGET_REFRESH="0.2")
        try:
            answer: dict[str, Any] = {"ok": True}
            deadline = time.monotonic() + 20
            while answer["ok"] and time.monotonic() < deadline:
                answer = agent.answer("invoke", "reasoning", "-")
                agent.ask("flush")
                time.sleep(0.2)
            assert answer["error"] == "BudgetExceededError", answer
            assert agent.ask("invoke", "tools", "-") == "Hello from anthropic-peer"
        finally:
            agent.stop()
    finally:
        server.stop()


def test_a_provider_a_budget_names_cannot_be_removed(budgeted: LLMConfigService) -> None:
    from llmconfig.errors import ConflictError
    from llmconfig.providers import ProviderCreate

    budgeted.providers.add(
        ProviderCreate(name="spare", provider_type="custom", api_base_url="http://127.0.0.1:9/v1"), validate=False
    )
    budgeted.budgets.set("provider:spare", BudgetUpdate(period="day", limit_usd=1), actor="t")
    with pytest.raises(ConflictError, match="the budget of provider:"):
        budgeted.providers.remove("spare")
    budgeted.budgets.delete("provider:spare")
    budgeted.providers.remove("spare")


def test_the_one_statement_resolution_without_a_user_reads_what_the_general_one_reads(
    budgeted: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    """A call without a user id reads the keys and budgets inside the global statement: the same rules, models
    and keys (in their order) as the resolution with a user id, which reads them in a statement of their own."""
    second = "sk-canary-resolution-second-77"
    budgeted.providers.keys.add("local", ProviderKeyCreate(api_key=SecretStr(second)), actor="t")
    provider_id = budgeted.providers.get("local").id
    mini = {"provider_id": "local", "model_name": "gpt-4o-mini"}
    budgeted.budgets.set("type:reasoning", BudgetUpdate(period="day", limit_usd=5, on_exceed=mini), actor="t")
    budgeted.budgets.set(f"provider:{provider_id}", BudgetUpdate(period="hour", limit_tokens=10**6), actor="t")
    budgeted.budgets.set("type:tools", BudgetUpdate(period="day", limit_usd=1), actor="t")  # another type's
    alone, _ = budgeted.resolver.resolve("reasoning")
    general, _ = budgeted.resolver.resolve("reasoning", user_id="nobody-in-particular")
    assert alone is not None and general is not None
    assert [rule.scope for rule in alone.budgets] == ["type:reasoning", f"provider:{provider_id}"]
    assert alone.budgets == general.budgets
    assert alone.target.api_keys == general.target.api_keys and len(alone.target.api_keys) == 2
    assert [key.hint for key in alone.target.api_keys] == [OPENAI_PEER_KEY[-4:], second[-4:]]
    on_exceed = alone.budgets[0].on_exceed
    assert on_exceed is not None and on_exceed.model_name == "gpt-4o-mini" and len(on_exceed.api_keys) == 2
