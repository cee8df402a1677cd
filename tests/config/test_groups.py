"""Groups: entries per group with history and rollback, ordered memberships, and resolution through them.

Resolution order: the user's override, then the user's groups in order, then the global entry, then the
environment. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate, GroupMembershipUpdate
from llmconfig.db.models import AuditEntry, Group, GroupConfig, GroupMember
from llmconfig.errors import ConflictError, NotFoundError, ValidationError
from llmconfig.providers import ProviderCreate
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer


@pytest.fixture
def local(service: LLMConfigService, openai_peer: OpenAIPeer) -> str:
    """Provider ``local`` on the OpenAI peer, validated (its catalog: gpt-4o, gpt-4o-mini, local-chat …)."""
    provider, _ = service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    return provider.id


def entry(model: str, **fields: object) -> ConfigUpdate:
    return ConfigUpdate.model_validate({"provider_id": "local", "model_name": model, **fields})


def member_of(service: LLMConfigService, user_id: str, *groups: str) -> None:
    service.groups.set_membership(user_id, GroupMembershipUpdate(groups=list(groups)), actor="t")


def resolved(service: LLMConfigService, user_id: str | None) -> tuple[str, str]:
    resolution, _ = service.resolver.resolve("reasoning", user_id)
    assert resolution is not None
    return resolution.source, resolution.target.model_name


def test_a_user_gets_their_override_then_their_groups_in_order_then_the_global_entry(
    service: LLMConfigService, local: str
) -> None:
    service.config.set_global("reasoning", entry("gpt-4o"), actor="t")
    service.config.set_group_entry("team-a", "reasoning", entry("gpt-4o-mini"), actor="t")
    service.config.set_group_entry("org", "reasoning", entry("local-chat"), actor="t")
    member_of(service, "u-1", "team-a", "org")
    member_of(service, "u-2", "org", "team-a")
    member_of(service, "u-3", "nobody-configures-this")

    assert resolved(service, "u-1") == ("group:team-a", "gpt-4o-mini")
    assert resolved(service, "u-2") == ("group:org", "local-chat")  # the first group wins
    assert resolved(service, "u-3") == ("global", "gpt-4o")  # a group without an entry is passed over
    assert resolved(service, "u-never-seen") == ("global", "gpt-4o")
    assert resolved(service, None) == ("global", "gpt-4o")

    service.config.set_override("u-1", "reasoning", entry("gpt-4o"), actor="t")
    assert resolved(service, "u-1") == ("user", "gpt-4o")  # the override wins over every group
    service.config.clear_override("u-1", "reasoning")
    service.config.clear_group_entry("team-a", "reasoning")
    assert resolved(service, "u-1") == ("group:org", "local-chat")  # the next group
    resolution, _ = service.resolver.resolve("reasoning", "u-1")
    assert resolution is not None and resolution.groups == ("team-a", "org")

    # A group entry applies without any global entry, and the group's fields are its own.
    service.config.set_group_entry("team-a", "planning", entry("gpt-4o-mini", temperature=0.3), actor="t")
    planning, _ = service.resolver.resolve("planning", "u-1")
    assert planning is not None and (planning.source, planning.temperature) == ("group:team-a", 0.3)
    assert service.resolver.resolve("planning", "u-3")[0] is None


def test_the_effective_configuration_says_where_each_type_comes_from(service: LLMConfigService, local: str) -> None:
    service.config.set_global("reasoning", entry("gpt-4o"), actor="t")
    service.config.set_global("tools", entry("gpt-4o"), actor="t")
    service.config.set_group_entry("team-a", "tools", entry("gpt-4o-mini"), actor="t")
    service.config.set_group_entry("org", "planning", entry("local-chat"), actor="t")
    service.config.set_override("u-1", "subagents", entry("gpt-4o-mini"), actor="t")
    member_of(service, "u-1", "team-a", "org")

    effective = service.config.effective("u-1")
    sources = {name: (e.source, e.model_name) for name, e in effective.items()}
    assert sources == {
        "reasoning": ("global", "gpt-4o"),
        "tools": ("group:team-a", "gpt-4o-mini"),
        "subagents": ("user", "gpt-4o-mini"),
        "planning": ("group:org", "local-chat"),
    }


def test_memberships_are_ordered_replaced_whole_and_audited(service: LLMConfigService, local: str) -> None:
    assert service.groups.membership("u-1").groups == []
    member_of(service, "u-1", "team-a", "org")
    assert service.groups.membership("u-1").groups == ["team-a", "org"]
    member_of(service, "u-1", "org", "team-a")  # the same groups, another order
    assert service.groups.membership("u-1").groups == ["org", "team-a"]
    member_of(service, "u-1", "org", "team-a")  # no change: no audit entry
    member_of(service, "u-2", "org")

    groups = {g.name: (g.members, g.interaction_types) for g in service.groups.list()}
    assert groups == {"org": (["u-1", "u-2"], []), "team-a": (["u-1"], [])}
    with service.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_type == "membership", AuditEntry.target_id == "u-1")
        ).all()
    assert actions == ["membership.update", "membership.update"]

    member_of(service, "u-1")
    assert service.groups.membership("u-1").groups == []
    # A group without members stays until it is deleted.
    assert {g.name: g.members for g in service.groups.list()} == {"org": ["u-2"], "team-a": []}


def test_a_group_comes_into_being_with_its_first_entry_and_lists_its_types(
    service: LLMConfigService, local: str
) -> None:
    with pytest.raises(NotFoundError, match="Unknown group 'team-a'"):
        service.config.group_entries("team-a")
    created = service.config.set_group_entry("team-a", "tools", entry("gpt-4o-mini"), actor="alice")
    assert (created.source, created.version, created.updated_by) == ("group:team-a", 1, "alice")
    assert set(service.config.group_entries("team-a")) == {"tools"}
    assert [(g.name, g.members, g.interaction_types) for g in service.groups.list()] == [("team-a", [], ["tools"])]


def test_group_entries_have_versions_history_and_rollback(service: LLMConfigService, local: str) -> None:
    service.config.set_group_entry("team-a", "reasoning", entry("gpt-4o", temperature=0.7), actor="a")
    service.config.set_group_entry("team-a", "reasoning", entry("gpt-4o-mini", version=1), actor="b")
    with pytest.raises(ConflictError, match="version 1, it is now at 2"):
        service.config.set_group_entry("team-a", "reasoning", entry("local-chat", version=1), actor="c")

    history = service.config.history("reasoning", group="team-a")
    assert [(v.version, v.actor, v.entry.model_name) for v in history] == [(2, "b", "gpt-4o-mini"), (1, "a", "gpt-4o")]
    assert service.config.history("reasoning") == []  # the global entry's history is apart

    restored = service.config.rollback("reasoning", 1, group="team-a", actor="c")
    assert (restored.version, restored.model_name, restored.temperature) == (3, "gpt-4o", 0.7)
    assert service.config.history("reasoning", group="team-a")[0].action == "group_config.rollback"
    member_of(service, "u-1", "team-a")
    assert resolved(service, "u-1") == ("group:team-a", "gpt-4o")
    with pytest.raises(NotFoundError, match="no version 9 for group 'team-a'"):
        service.config.rollback("reasoning", 9, group="team-a")


def test_deleting_a_group_removes_its_entries_and_memberships_and_audits_each(
    service: LLMConfigService, local: str
) -> None:
    service.config.set_global("reasoning", entry("gpt-4o"), actor="t")
    service.config.set_group_entry("team-a", "reasoning", entry("gpt-4o-mini"), actor="t")
    service.config.set_group_entry("org", "reasoning", entry("local-chat"), actor="t")
    member_of(service, "u-1", "team-a", "org")
    assert resolved(service, "u-1") == ("group:team-a", "gpt-4o-mini")

    service.groups.delete("team-a", actor="alice")
    assert service.groups.membership("u-1").groups == ["org"]
    assert resolved(service, "u-1") == ("group:org", "local-chat")
    assert [g.name for g in service.groups.list()] == ["org"]
    history = service.config.history("reasoning", group="team-a")
    assert [v.action for v in history] == ["group_config.create"]  # the delete has no "after"
    with service.sessions() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "alice")).all()
        assert sorted(actions) == ["group.delete", "group_config.delete", "membership.update"]
        assert session.scalar(select(func.count()).select_from(GroupConfig)) == 1
        assert session.scalar(select(func.count()).select_from(GroupMember)) == 1
        assert session.get(Group, "team-a") is None
    with pytest.raises(NotFoundError, match="Unknown group 'team-a'; known groups: org"):
        service.groups.delete("team-a")


@pytest.mark.parametrize("name", ["Team-A", "team a", "team\na", "team\x00a", "-team", "", "t" * 65, "../x"])
def test_a_group_name_outside_the_pattern_is_refused_and_nothing_is_stored(
    service: LLMConfigService, local: str, name: str
) -> None:
    with pytest.raises(ValidationError, match="group name"):
        service.config.set_group_entry(name, "reasoning", entry("gpt-4o"), actor="t")
    with pytest.raises(Exception, match="group name"):
        member_of(service, "u-1", name)
    assert service.groups.list() == []


def test_an_interaction_type_a_group_configures_cannot_be_deleted(service: LLMConfigService, local: str) -> None:
    from llmconfig.config import InteractionTypeCreate

    service.types.add(InteractionTypeCreate(name="triage", kind="chat"))
    service.config.set_group_entry("team-a", "triage", entry("gpt-4o"), actor="t")
    with pytest.raises(ConflictError, match="entries for group\\(s\\) team-a"):
        service.types.delete("triage")


def test_a_provider_a_group_entry_uses_cannot_be_removed(service: LLMConfigService, local: str) -> None:
    service.config.set_group_entry("team-a", "tools", entry("gpt-4o"), actor="t")
    with pytest.raises(ConflictError, match="tools \\(entry of group team-a\\)"):
        service.providers.remove("local")
