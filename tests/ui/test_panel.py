"""The settings panel end to end, in a real Chromium, against a real server, database and provider peer.

Every check is on what a user sees, found the way assistive technology finds it (labels, roles,
accessible names), so these tests also prove that the panel's controls are labelled.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.api.conftest import API
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, on_sqlite

CHAT_MODELS = ["gpt-4o", "gpt-4o-mini", "local-chat"]  # the openai_peer's models, minus its embeddings model


# ------------------------------------------------------------------------------------------------ full flow


def test_admin_adds_a_provider_and_configures_reasoning(panel: Panel, openai_peer: OpenAIPeer) -> None:
    page = panel.page
    panel.sign_in()

    providers = panel.tab("Providers")
    providers.get_by_role("button", name="Add provider").click()
    providers.get_by_label("Name").fill("peer")
    providers.get_by_label("Type").select_option("openai")
    page.get_by_label("Base URL").fill(openai_peer.root_url)
    key = page.get_by_label("API key")
    expect(key).to_have_attribute("type", "password")
    expect(key).to_have_value("")
    key.fill(OPENAI_PEER_KEY)
    key.press("Enter")

    # Added, then validated right away: the row shows the outcome and how long it took.
    row = panel.provider_row("peer")
    status = row.get_by_role("cell").nth(3)  # Type, Base URL, Key, Status
    expect(status).to_contain_text(re.compile(r"^ok\s*4 models available · \d+(\.\d)? ms"))
    expect(row).to_contain_text("…4068")  # the key's hint, never the key
    expect(page.get_by_label("API key")).to_have_value("")

    panel.tab("Model Configuration")
    card = panel.card("reasoning")
    card.get_by_label("Provider", exact=True).select_option(label="peer (openai)")
    model = card.get_by_label("Model", exact=True)
    # Only the chat models of the chosen provider are offered to a chat interaction type.
    expect(model.locator("option")).to_have_text(["Choose a model", *CHAT_MODELS])
    expect(model.locator("option", has_text="text-embedding-3-small")).to_have_count(0)
    model.select_option("gpt-4o")
    card.get_by_label("Temperature").fill("0.3")
    card.get_by_role("button", name="Save").click()
    expect(panel.toast).to_have_text("Saved reasoning: peer / gpt-4o")
    expect(card).to_contain_text("Version 1 · changed")

    # The token lives in sessionStorage: a reload keeps the user signed in and shows what was saved.
    page.reload()
    expect(page.get_by_role("tablist", name="Settings")).to_be_visible()
    card = panel.card("reasoning")
    expect(card.get_by_label("Model", exact=True)).to_have_value("gpt-4o")
    expect(card.get_by_label("Temperature")).to_have_value("0.3")
    expect(card.get_by_label("Provider", exact=True).locator("option:checked")).to_have_text("peer (openai)")

    reasoning = panel.config()["reasoning"]
    assert (reasoning["provider_name"], reasoning["model_name"], reasoning["temperature"]) == ("peer", "gpt-4o", 0.3)
    assert reasoning["updated_by"] == "token:test-admin"


# ------------------------------------------------------------------------------------------------ sign-in


@on_sqlite
def test_a_wrong_token_is_refused_and_the_sign_in_form_stays(panel: Panel) -> None:
    panel.open()
    panel.page.get_by_label("Token", exact=True).fill("not-a-real-token")
    panel.page.get_by_role("button", name="Sign in").click()

    expect(panel.page.get_by_role("alert")).to_have_text("That token was not accepted. Check it and try again.")
    expect(panel.page.get_by_label("Token", exact=True)).to_be_visible()
    expect(panel.page.get_by_role("tablist")).to_be_hidden()
    assert panel.page.evaluate("() => sessionStorage.length") == 0


# ------------------------------------------------------------------------------------------------ conflicts


@on_sqlite
def test_a_conflicting_save_is_explained_and_reload_shows_the_other_change(
    panel: Panel, openai_peer: OpenAIPeer
) -> None:
    peer = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    panel.set_config("reasoning", provider_id=peer["id"], model_name="gpt-4o", temperature=0.7)
    panel.sign_in()
    card = panel.card("reasoning")
    expect(card.get_by_label("Model", exact=True)).to_have_value("gpt-4o")

    # Someone else changes reasoning while the page is open.
    panel.set_config("reasoning", provider_id=peer["id"], model_name="gpt-4o-mini", temperature=0.2, version=1)

    card.get_by_label("Temperature").fill("0.9")
    card.get_by_role("button", name="Save").click()
    expect(card.get_by_role("alert")).to_contain_text(
        "Someone else changed reasoning meanwhile, so your change was not saved."
    )
    assert panel.config()["reasoning"]["temperature"] == 0.2  # nothing was overwritten

    card.get_by_role("button", name="Reload").click()
    expect(card.get_by_label("Model", exact=True)).to_have_value("gpt-4o-mini")
    expect(card.get_by_label("Temperature")).to_have_value("0.2")
    expect(card).to_contain_text("Version 2")
    expect(card.get_by_role("alert")).to_be_hidden()

    # After the reload the user's next save goes through.
    card.get_by_label("Temperature").fill("0.9")
    card.get_by_role("button", name="Save").click()
    expect(panel.toast).to_have_text("Saved reasoning: peer / gpt-4o-mini")
    assert panel.config()["reasoning"]["temperature"] == 0.9


# ------------------------------------------------------------------------------------------------ delete


@on_sqlite
def test_deleting_asks_first_refuses_a_provider_in_use_and_removes_an_unused_one(
    panel: Panel, openai_peer: OpenAIPeer
) -> None:
    used = panel.add_provider("in-use", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    panel.add_provider("spare", "custom", openai_peer.base_url, OPENAI_PEER_KEY)
    panel.set_config("reasoning", provider_id=used["id"], model_name="gpt-4o")
    panel.sign_in()
    panel.tab("Providers")
    page = panel.page
    dialog = page.get_by_role("dialog", name="Delete provider?")

    page.get_by_role("button", name="Delete in-use").click()
    expect(dialog).to_contain_text("Delete provider in-use?")
    dialog.get_by_role("button", name="Delete").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Provider 'in-use' is in use by reasoning")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(panel.provider_row("in-use")).to_be_visible()

    page.get_by_role("button", name="Delete spare").click()
    expect(dialog).to_contain_text("Delete provider spare?")
    expect(dialog.get_by_role("alert")).to_be_hidden()  # the previous error is not shown again
    dialog.get_by_role("button", name="Delete").click()
    expect(dialog).to_be_hidden()
    expect(panel.toast).to_have_text("Deleted spare")
    expect(panel.provider_row("spare")).to_have_count(0)
    expect(panel.provider_row("in-use")).to_be_visible()
    names = [p["name"] for p in panel.http.get(f"{API}/providers").json()]
    assert names == ["in-use"]


# ------------------------------------------------------------------------------------------------ user overrides


@on_sqlite
def test_user_overrides_show_their_source_and_can_be_set_and_cleared(
    panel: Panel, openai_peer: OpenAIPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no environment fallback: sources are user or global
    peer = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    panel.set_config("reasoning", provider_id=peer["id"], model_name="gpt-4o")
    panel.sign_in()
    users = panel.tab("User overrides")
    users.get_by_label("User id").fill("u-42")
    users.get_by_role("button", name="Show effective configuration").click()

    table = users.get_by_role("table", name="Effective configuration of u-42")
    reasoning = table.get_by_role("row").filter(has=panel.page.get_by_role("rowheader", name="reasoning"))
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("global")
    expect(reasoning.get_by_role("cell").nth(1)).to_have_text("peer / gpt-4o")
    tools = table.get_by_role("row").filter(has=panel.page.get_by_role("rowheader", name="tools"))
    expect(tools.get_by_role("cell").nth(1)).to_have_text("not configured")

    reasoning.get_by_label("reasoning override provider").select_option(label="peer (openai)")
    reasoning.get_by_label("reasoning override model").fill("gpt-4o-mini")
    reasoning.get_by_role("button", name="Set override").click()
    expect(panel.toast).to_have_text("Override saved for u-42: reasoning")
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("user")
    expect(reasoning.get_by_role("cell").nth(1)).to_have_text("peer / gpt-4o-mini")
    effective = panel.http.get(f"{API}/users/u-42/config").json()
    assert (effective["reasoning"]["source"], effective["reasoning"]["model_name"]) == ("user", "gpt-4o-mini")

    reasoning.get_by_role("button", name="Clear reasoning override").click()
    expect(panel.toast).to_have_text("Override cleared for u-42: reasoning")
    expect(reasoning.get_by_role("cell").nth(0)).to_have_text("global")
    expect(reasoning.get_by_role("cell").nth(1)).to_have_text("peer / gpt-4o")
    expect(reasoning.get_by_role("button", name="Clear reasoning override")).to_be_disabled()


# ------------------------------------------------------------------------------------------------ keyboard


@on_sqlite
def test_signing_in_switching_tabs_and_saving_a_card_work_by_keyboard_alone(
    panel: Panel, openai_peer: OpenAIPeer
) -> None:
    panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    page, keyboard = panel.page, panel.page.keyboard
    panel.open()

    expect(page.get_by_label("Token", exact=True)).to_be_focused()
    keyboard.type(panel.api.admin_token)
    keyboard.press("Enter")
    expect(page.get_by_role("tablist", name="Settings")).to_be_visible()

    # Signed in, the focus is on the selected tab; the arrow keys move along the tab list.
    config_tab = page.get_by_role("tab", name="Model Configuration")
    expect(config_tab).to_be_focused()
    keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Providers")).to_be_focused()
    expect(page.get_by_role("tabpanel", name="Providers")).to_be_visible()
    keyboard.press("ArrowRight")
    expect(page.get_by_role("tabpanel", name="Groups")).to_be_visible()
    keyboard.press("ArrowRight")
    expect(page.get_by_role("tabpanel", name="User overrides")).to_be_visible()
    keyboard.press("Home")
    expect(config_tab).to_be_focused()
    expect(config_tab).to_have_attribute("aria-selected", "true")

    # From the selected tab straight into the first card; choose, type, and submit with Enter.
    card = panel.card("reasoning")
    keyboard.press("Tab")
    provider = card.get_by_label("Provider", exact=True)
    expect(provider).to_be_focused()
    keyboard.press("ArrowDown")  # the first provider
    expect(provider.locator("option:checked")).to_have_text("peer (openai)")
    keyboard.press("Tab")
    model = card.get_by_label("Model", exact=True)
    expect(model).to_be_focused()
    keyboard.press("ArrowDown")  # the first chat model
    expect(model).to_have_value("gpt-4o")
    keyboard.press("Tab")  # the slider mirrors the field and is skipped
    expect(card.get_by_label("Temperature")).to_be_focused()
    keyboard.type("0.4")
    keyboard.press("Tab")
    expect(card.get_by_label("Max tokens")).to_be_focused()
    keyboard.type("512")
    keyboard.press("Enter")

    expect(panel.toast).to_have_text("Saved reasoning: peer / gpt-4o")
    reasoning = panel.config()["reasoning"]
    assert (reasoning["model_name"], reasoning["temperature"], reasoning["max_tokens"]) == ("gpt-4o", 0.4, 512)


# ------------------------------------------------------------------------------------------------ empty states


@on_sqlite
def test_a_fresh_database_guides_the_user_to_add_a_provider(panel: Panel) -> None:
    page = panel.page
    panel.sign_in()

    config = page.get_by_role("tabpanel", name="Model Configuration")
    expect(config.get_by_role("heading", name="Add a provider first")).to_be_visible()
    expect(panel.card("reasoning").get_by_label("Provider", exact=True).locator("option")).to_have_text(
        ["No providers yet"]
    )
    expect(panel.card("reasoning")).to_contain_text("Not configured yet")

    config.get_by_role("link", name="Providers").click()
    providers = page.get_by_role("tabpanel", name="Providers")
    expect(providers.get_by_role("heading", name="No providers yet")).to_be_visible()
    expect(providers.get_by_role("table")).to_be_hidden()
    expect(page.get_by_role("tab", name="Providers")).to_have_attribute("aria-selected", "true")
