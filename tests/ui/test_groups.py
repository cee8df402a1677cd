"""Groups in the panel, in a real Chromium: a group's entries edited in cards, a user's groups set in order, each
type's source shown, and a group that a budget names refused deletion with the server's 409 message."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.api.conftest import API
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, Reports, on_sqlite


def effective(panel: Panel, user_id: str) -> dict[str, Any]:
    response = panel.http.get(f"{API}/users/{user_id}/config")
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


@on_sqlite
def test_a_group_entry_made_in_the_panel_is_what_its_members_get_and_the_source_says_so(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.reasoning_on_peer(openai_peer.root_url)
    panel.set_config("tools", provider_id=provider["id"], model_name="gpt-4o")
    panel.sign_in()
    page = panel.page

    groups = panel.tab("Groups")
    expect(groups.get_by_text("No groups yet")).to_be_visible()
    groups.get_by_label("Group", exact=True).fill("support-team")
    groups.get_by_role("button", name="Open group").click()
    detail = groups.get_by_role("region", name="Entries of support-team")
    card = detail.get_by_role("article", name="reasoning", exact=True)
    expect(card).to_contain_text("Not configured yet")
    expect(card.get_by_role("button", name="Remove reasoning for support-team")).to_be_hidden()
    card.get_by_label("Provider", exact=True).select_option(label="peer (openai)")
    card.get_by_label("Model", exact=True).select_option("gpt-4o-mini")
    card.get_by_label("Temperature").fill("0.3")
    card.get_by_label("Max tokens").fill("512")
    card.get_by_role("button", name="Save").click()
    expect(panel.toast).to_have_text("Saved reasoning for support-team: peer / gpt-4o-mini")
    expect(card).to_contain_text("Version 1")
    row = groups.get_by_role("row").filter(has=page.get_by_role("rowheader", name="support-team"))
    expect(row).to_contain_text("no members")
    expect(row).to_contain_text("reasoning")

    stored = panel.http.get(f"{API}/groups/support-team/config").json()["reasoning"]
    assert (stored["model_name"], stored["temperature"], stored["max_tokens"]) == ("gpt-4o-mini", 0.3, 512)
    assert stored["source"] == "group:support-team"

    # A user in the group: the membership is set on the User overrides tab, and each type's source is shown.
    users = panel.tab("User overrides")
    users.get_by_label("User id").fill("u-7")
    users.get_by_role("button", name="Show effective configuration").click()
    membership = users.get_by_role("region", name="Groups of u-7")
    expect(membership).to_contain_text("No groups: the global entries apply.")
    membership.get_by_label("Add a group").fill("support-team")
    membership.get_by_role("button", name="Add group").click()
    membership.get_by_role("button", name="Save groups").click()
    expect(panel.toast).to_have_text("Groups saved for u-7: support-team")
    table = users.get_by_role("table", name="Effective configuration of u-7")
    reasoning = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="reasoning"))
    tools = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="tools"))
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("group support-team")
    expect(reasoning.get_by_role("cell").nth(1)).to_have_text("peer / gpt-4o-mini")
    expect(tools.get_by_role("cell").nth(0)).to_have_text("global")

    config = effective(panel, "u-7")
    assert config["reasoning"]["source"] == "group:support-team"
    assert config["reasoning"]["model_name"] == "gpt-4o-mini"
    assert config["tools"]["source"] == "global"
    assert panel.http.get(f"{API}/users/u-7/groups").json()["groups"] == ["support-team"]

    # Back on the Groups tab the member is listed; removing the entry returns the member to the global one.
    groups = panel.tab("Groups")
    expect(row).to_contain_text("u-7")
    row.get_by_role("button", name="Edit support-team").click()
    # The entries are read again and their cards replaced: the heading takes the focus once they are in.
    expect(page.locator("#group-detail-title")).to_be_focused()
    card.get_by_role("button", name="Remove reasoning for support-team").click()
    expect(panel.toast).to_have_text("Removed reasoning for support-team")
    expect(card).to_contain_text("Not configured yet")
    expect(row).to_contain_text("no entries")
    assert effective(panel, "u-7")["reasoning"]["source"] == "global"

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"


@on_sqlite
def test_a_users_groups_are_reordered_so_the_first_with_an_entry_wins(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.reasoning_on_peer(openai_peer.root_url)
    for group, model in (("team-a", "gpt-4o-mini"), ("org", "local-chat")):
        body = {"provider_id": provider["id"], "model_name": model}
        assert panel.http.put(f"{API}/groups/{group}/config/reasoning", json=body).status_code == 200
    membership_body = {"groups": ["team-a", "org"]}
    assert panel.http.put(f"{API}/users/u-9/groups", json=membership_body).status_code == 200
    panel.sign_in()
    page = panel.page

    users = panel.tab("User overrides")
    users.get_by_label("User id").fill("u-9")
    users.get_by_role("button", name="Show effective configuration").click()
    membership = users.get_by_role("region", name="Groups of u-9")
    listed = membership.get_by_role("list", name="Groups of u-9, first wins").get_by_role("listitem")
    expect(listed).to_have_text(["team-aMove upRemove", "orgMove upRemove"])
    table = users.get_by_role("table", name="Effective configuration of u-9")
    reasoning = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="reasoning"))
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("group team-a")

    membership.get_by_role("button", name="Move org up").click()
    expect(listed.first).to_contain_text("org")
    membership.get_by_role("button", name="Save groups").click()
    expect(panel.toast).to_have_text("Groups saved for u-9: org, team-a")
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("group org")
    expect(reasoning.get_by_role("cell").nth(1)).to_have_text("peer / local-chat")
    assert panel.http.get(f"{API}/users/u-9/groups").json()["groups"] == ["org", "team-a"]
    assert effective(panel, "u-9")["reasoning"]["source"] == "group:org"

    # Out of every group: the global entry again.
    for name in ("org", "team-a"):
        membership.get_by_role("button", name=f"Remove {name} from the groups").click()
    membership.get_by_role("button", name="Save groups").click()
    expect(panel.toast).to_have_text("Groups saved for u-9: none")
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("global")
    assert effective(panel, "u-9")["reasoning"]["source"] == "global"

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"


@on_sqlite
def test_deleting_a_group_a_budget_names_shows_the_409_and_deletes_nothing_until_the_budget_goes(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    body = {"provider_id": provider["id"], "model_name": "gpt-4o-mini"}
    assert panel.http.put(f"{API}/groups/team-a/config/reasoning", json=body).status_code == 200
    assert panel.http.put(f"{API}/users/u-1/groups", json={"groups": ["team-a"]}).status_code == 200
    budget = {"period": "day", "limit_usd": 5}
    assert panel.http.put(f"{API}/budgets/group:team-a", json=budget).status_code == 200
    panel.sign_in()
    page = panel.page

    groups = panel.tab("Groups")
    row = groups.get_by_role("row").filter(has=page.get_by_role("rowheader", name="team-a"))
    expect(row).to_contain_text("u-1")
    row.get_by_role("button", name="Delete team-a").click()
    dialog = page.get_by_role("dialog", name="Delete group?")
    expect(dialog).to_contain_text("Delete team-a with its 1 entry? Its 1 member follows")
    dialog.get_by_role("button", name="Delete").click()
    expect(dialog.get_by_role("alert")).to_contain_text("in use by the budget of group:team-a")
    dialog.get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    assert [g["name"] for g in panel.http.get(f"{API}/groups").json()] == ["team-a"]

    assert panel.http.delete(f"{API}/budgets/group:team-a").status_code == 204
    row.get_by_role("button", name="Delete team-a").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(dialog).to_be_hidden()
    expect(panel.toast).to_have_text("Deleted group team-a")
    expect(groups.get_by_text("No groups yet")).to_be_visible()
    assert panel.http.get(f"{API}/groups").json() == []
    assert effective(panel, "u-1") == {}

    assert reports.none(refused=(409,)), f"violations: {reports.violations}; console: {reports.console}"


@on_sqlite
def test_a_group_entry_has_variants_and_a_history_like_a_global_one(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    panel.sign_in()
    page = panel.page

    groups = panel.tab("Groups")
    groups.get_by_label("Group", exact=True).fill("team-a")
    groups.get_by_role("button", name="Open group").click()
    card = groups.get_by_role("region", name="Entries of team-a").get_by_role("article", name="reasoning", exact=True)
    card.get_by_label("Provider", exact=True).select_option(label="peer (openai)")
    card.get_by_label("Model", exact=True).select_option("gpt-4o")
    card.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Version 1")
    card.get_by_role("button", name="Add variant").click()
    card.get_by_label("Variant 1 name").fill("mini")
    card.get_by_label("Variant 1 provider").select_option(label="peer (openai)")
    card.get_by_label("Variant 1 model").fill("gpt-4o-mini")
    card.get_by_label("Variant 1 weight").fill("300")
    expect(card.locator(".variants li .share")).to_have_text("75%")
    card.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Version 2")
    stored = panel.http.get(f"{API}/groups/team-a/config").json()["reasoning"]
    assert (stored["weight"], [(v["name"], v["provider_id"], v["weight"]) for v in stored["variants"]]) == (
        100,
        [("mini", provider["id"], 300)],
    )

    card.get_by_role("button", name="History of reasoning for team-a").click()
    drawer = page.get_by_role("dialog", name="History of reasoning for team-a")
    expect(drawer.get_by_role("listitem").filter(has_text="Version 2")).to_contain_text("variants")
    drawer.get_by_role("button", name="Restore version 1").click()
    expect(panel.toast).to_have_text("Restored version 1 of reasoning for team-a as version 3")
    expect(card).to_contain_text("Version 3")
    expect(card.locator(".variants li")).to_have_count(0)
    assert panel.http.get(f"{API}/groups/team-a/config").json()["reasoning"]["variants"] == []
    assert panel.config() == {}  # the global entry was never touched

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"
