"""The Budgets tab, in a real Chromium: a budget made in the panel shows its spend against its limits as
meters, an edit that puts it over its limit marks it exceeded, the server's 422 is shown, and Delete removes it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.api.conftest import API
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, Reports, on_sqlite


def budgets(panel: Panel) -> dict[str, dict[str, Any]]:
    response = panel.http.get(f"{API}/budgets")
    assert response.status_code == 200, response.text
    return {b["scope"]: b for b in response.json()}


@on_sqlite
def test_a_budget_made_in_the_panel_shows_its_spend_is_marked_when_exceeded_and_is_deleted(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.reasoning_on_peer(openai_peer.root_url)
    service = panel.api.service
    for _ in range(2):
        service.get_llm("reasoning").invoke("spend a little")
    assert service.flush_usage()
    panel.sign_in()
    page = panel.page

    tab = panel.tab("Budgets")
    expect(tab.get_by_text("No budgets yet")).to_be_visible()
    tab.get_by_role("button", name="Add budget").click()
    form = tab.get_by_role("form", name="Add budget")

    # No limit at all: the server's 422 is shown in the form, and nothing is stored.
    form.get_by_label("Scope").select_option("type")
    form.get_by_label("Name").fill("reasoning")
    form.get_by_role("button", name="Save budget").click()
    expect(form.get_by_role("alert")).to_contain_text("A budget needs a limit: give limit_usd, limit_tokens or both")
    form.get_by_label("Limit (USD)").fill("-1")
    form.get_by_role("button", name="Save budget").click()
    expect(form.get_by_role("alert")).to_contain_text("limit_usd")
    assert budgets(panel) == {}

    form.get_by_label("Limit (USD)").fill("0.01")
    form.get_by_label("Limit (tokens)").fill("1000")
    form.get_by_label("Period").select_option("day")
    form.get_by_role("button", name="Save budget").click()
    expect(panel.toast).to_have_text("Saved the budget of type:reasoning")
    expect(form).to_be_hidden()

    stored = budgets(panel)["type:reasoning"]
    assert (stored["period"], stored["limit_usd"], stored["limit_tokens"], stored["on_exceed"]) == (
        "day",
        0.01,
        1000,
        None,
    )
    assert stored["spent_tokens"] > 0 and stored["spent_usd"] > 0 and not stored["exceeded"]
    row = tab.get_by_role("row").filter(has=page.get_by_role("rowheader", name="type:reasoning"))
    usd = row.get_by_role("meter", name="type:reasoning: USD spent")
    tokens = row.get_by_role("meter", name="type:reasoning: tokens spent")
    assert float(usd.get_attribute("value") or "nan") == stored["spent_usd"]
    assert float(usd.get_attribute("max") or "nan") == 0.01
    assert int(tokens.get_attribute("value") or "0") == stored["spent_tokens"]
    expect(row).to_contain_text(f"{stored['spent_tokens']} of 1,000 tokens")
    expect(row).to_contain_text("calls fail")
    expect(row.get_by_role("cell").first).to_have_text("dayresets at midnight UTC")
    expect(row).not_to_contain_text("exceeded")

    # Edited under what was spent already, with a model to go to: marked exceeded, the fallback shown.
    row.get_by_role("button", name="Edit budget type:reasoning").click()
    form = tab.get_by_role("form", name="Edit budget type:reasoning")
    expect(form.get_by_label("Name")).to_be_disabled()
    expect(form.get_by_label("Limit (tokens)")).to_have_value("1000")
    form.get_by_label("Limit (tokens)").fill("5")
    form.get_by_label("When spent, use provider").select_option(label="peer (openai)")
    # Not a model the provider offers: refused, and nothing changes.
    form.get_by_label("When spent, use model").fill("gpt-9")
    form.get_by_role("button", name="Save budget").click()
    expect(form.get_by_role("alert")).to_contain_text("gpt-9")
    assert budgets(panel)["type:reasoning"]["version"] == 1
    form.get_by_label("When spent, use model").fill("gpt-4o-mini")
    form.get_by_role("button", name="Save budget").click()
    expect(panel.toast).to_have_text("Saved the budget of type:reasoning")
    expect(row.locator(".badge.failed")).to_have_text("exceeded")
    expect(row).to_have_class("exceeded")
    expect(row).to_contain_text("peer / gpt-4o-mini")
    assert tokens.get_attribute("value") == "5"  # the meter stops at its limit; the text says how far over
    expect(row).to_contain_text(f"{stored['spent_tokens']} of 5 tokens")
    stored = budgets(panel)["type:reasoning"]
    assert stored["exceeded"] and stored["limit_tokens"] == 5 and stored["version"] == 2
    assert stored["on_exceed"] == {"provider_id": provider["id"], "model_name": "gpt-4o-mini"}

    row.get_by_role("button", name="Delete budget type:reasoning").click()
    dialog = page.get_by_role("dialog", name="Delete budget?")
    expect(dialog).to_contain_text("Delete the budget of type:reasoning?")
    dialog.get_by_role("button", name="Delete").click()
    expect(panel.toast).to_have_text("Deleted the budget of type:reasoning")
    expect(tab.get_by_text("No budgets yet")).to_be_visible()
    assert budgets(panel) == {}

    assert reports.none(refused=(422,)), f"violations: {reports.violations}; console: {reports.console}"


@on_sqlite
def test_group_and_provider_budgets_are_made_by_name(panel: Panel, reports: Reports, openai_peer: OpenAIPeer) -> None:
    provider = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    body = {"provider_id": provider["id"], "model_name": "gpt-4o-mini"}
    assert panel.http.put(f"{API}/groups/team-a/config/reasoning", json=body).status_code == 200
    panel.sign_in()

    tab = panel.tab("Budgets")
    tab.get_by_role("button", name="Add budget").click()
    form = tab.get_by_role("form", name="Add budget")
    form.get_by_label("Scope").select_option("group")
    expect(form.locator("#b-names option")).to_have_count(1)
    expect(form.locator("#b-names option")).to_have_attribute("value", "team-a")
    form.get_by_label("Name").fill("team-a")
    form.get_by_label("Period").select_option("month")
    form.get_by_label("Limit (USD)").fill("25")
    form.get_by_role("button", name="Save budget").click()
    row = tab.get_by_role("row").filter(has=panel.page.get_by_role("rowheader", name="group:team-a"))
    expect(row).to_contain_text("$0.0000 of $25.00 (0%)")
    expect(row.get_by_role("cell").first).to_have_text("monthresets on the 1st, UTC")
    stored = budgets(panel)["group:team-a"]
    assert (stored["period"], stored["limit_usd"], stored["limit_tokens"]) == ("month", 25, None)

    # A provider's budget is stored under its id, and shown (and edited) under its name.
    tab.get_by_role("button", name="Add budget").click()
    form.get_by_label("Scope").select_option("provider")
    form.get_by_label("Name").fill("peer")
    form.get_by_label("Limit (tokens)").fill("1000000")
    form.get_by_role("button", name="Save budget").click()
    expect(panel.toast).to_have_text("Saved the budget of provider:peer")
    assert f"provider:{provider['id']}" in budgets(panel)
    peer = tab.get_by_role("row").filter(has=panel.page.get_by_role("rowheader", name="provider:peer"))
    peer.get_by_role("button", name="Edit budget provider:peer").click()
    edit = tab.get_by_role("form", name="Edit budget provider:peer")
    expect(edit.get_by_label("Name")).to_have_value("peer")
    edit.get_by_label("Period").select_option("hour")
    edit.get_by_role("button", name="Save budget").click()
    # The toast of the first save may still be showing: wait for the row the new save renders.
    expect(peer.get_by_role("cell").first).to_contain_text("hour")
    assert budgets(panel)[f"provider:{provider['id']}"]["period"] == "hour"

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"
