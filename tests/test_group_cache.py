"""The model cache and groups: a change to a group's entry, or to a user's groups, reaches warm get_llm calls
of exactly the users it concerns. With an hour of TTL only the pushed invalidations can bring them up to date."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate, GroupMembershipUpdate
from llmconfig.settings import Settings
from tests.helpers import configure_reasoning
from tests.peers import OpenAIPeer


@pytest.fixture
def cached(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> Iterator[LLMConfigService]:
    service = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=3600))
    try:
        configure_reasoning(service, openai_peer)  # reasoning: local / gpt-4o
        yield service
    finally:
        service.close()


def model(service: LLMConfigService, user_id: str | None) -> str:
    return str(service.get_llm("reasoning", user_id=user_id).model_name)  # type: ignore[attr-defined]


def set_group(service: LLMConfigService, group: str, model_name: str) -> None:
    service.config.set_group_entry(
        group, "reasoning", ConfigUpdate(provider_id="local", model_name=model_name), actor="t"
    )


def join(service: LLMConfigService, user_id: str, *groups: str) -> None:
    service.groups.set_membership(user_id, GroupMembershipUpdate(groups=list(groups)), actor="t")


def test_a_warm_get_llm_of_a_member_follows_the_groups_entry_and_nobody_elses_is_dropped(
    cached: LLMConfigService,
) -> None:
    set_group(cached, "team-a", "gpt-4o-mini")
    join(cached, "member", "team-a")
    join(cached, "outsider", "team-b")
    assert (model(cached, "member"), model(cached, "outsider"), model(cached, None)) == (
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o",
    )
    outsider = cached.get_llm("reasoning", user_id="outsider")
    anonymous = cached.get_llm("reasoning")
    planning_key = ("planning", "member", "chat")

    set_group(cached, "team-a", "local-chat")
    assert model(cached, "member") == "local-chat"
    # Entries the change cannot affect stay as they were: the very same objects.
    assert cached.get_llm("reasoning", user_id="outsider") is outsider
    assert cached.get_llm("reasoning") is anonymous
    assert planning_key not in cached.cache._hot

    # A group the user is in but that had no entry for the type gets one: the user follows it.
    join(cached, "member", "team-b", "team-a")
    assert model(cached, "member") == "local-chat"
    set_group(cached, "team-b", "gpt-4o")
    assert model(cached, "member") == "gpt-4o"
    assert model(cached, "outsider") == "gpt-4o"

    cached.config.clear_group_entry("team-b", "reasoning")
    assert model(cached, "member") == "local-chat"
    cached.groups.delete("team-a")
    assert model(cached, "member") == "gpt-4o"  # the global entry again


def test_a_change_of_a_users_groups_drops_that_users_entries_only(cached: LLMConfigService) -> None:
    set_group(cached, "team-a", "gpt-4o-mini")
    set_group(cached, "org", "local-chat")
    join(cached, "u-1", "team-a")
    join(cached, "u-2", "team-a")
    assert (model(cached, "u-1"), model(cached, "u-2")) == ("gpt-4o-mini", "gpt-4o-mini")
    other = cached.get_llm("reasoning", user_id="u-2")

    join(cached, "u-1", "org", "team-a")
    assert model(cached, "u-1") == "local-chat"
    assert cached.get_llm("reasoning", user_id="u-2") is other
    join(cached, "u-1")
    assert model(cached, "u-1") == "gpt-4o"


def test_a_member_without_any_entry_for_the_type_follows_a_new_group_entry(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> None:
    # Nothing configured: the user's call takes the environment fallback, which knows no groups.
    service = LLMConfigService(
        settings_factory(
            database_url=migrated_database_url,
            cache_ttl=3600,
            openai_api_key="sk-env-fallback-000",
            openai_base_url=openai_peer.base_url,
        )
    )
    try:
        configure_reasoning(service, openai_peer)
        join(service, "member", "team-a")
        assert str(service.get_llm("planning", user_id="member").model_name) == "gpt-4o"  # type: ignore[attr-defined]
        service.config.set_group_entry(
            "team-a", "planning", ConfigUpdate(provider_id="local", model_name="local-chat"), actor="t"
        )
        assert str(service.get_llm("planning", user_id="member").model_name) == "local-chat"  # type: ignore[attr-defined]
    finally:
        service.close()


@pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
def test_a_group_change_made_by_another_process_reaches_a_warm_member_by_push(
    cached: LLMConfigService, migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    set_group(cached, "team-a", "gpt-4o-mini")
    join(cached, "member", "team-a")
    assert (model(cached, "member"), model(cached, "joiner")) == ("gpt-4o-mini", "gpt-4o")
    writer = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=3600))
    try:
        set_group(writer, "team-a", "local-chat")
        join(writer, "joiner", "team-a")
    finally:
        writer.close()
    deadline = time.monotonic() + 10
    while (model(cached, "member"), model(cached, "joiner")) != ("local-chat",) * 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (model(cached, "member"), model(cached, "joiner")) == ("local-chat", "local-chat")
