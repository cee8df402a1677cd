"""The Access tab in a real Chromium: creating API tokens (shown once), using them, revoking them.

The tokens made here are used against the real server: its resolve endpoint shows the type limit at work.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.api.conftest import API
from tests.ui.conftest import MOBILE, Panel, on_sqlite

TOKENS = f"{API}/tokens"
BUILTIN_TYPES = ["reasoning", "tools", "subagents", "planning", "embeddings"]


@pytest.fixture
def console(page: Page) -> list[str]:
    """Everything the panel writes to the browser's console."""
    lines: list[str] = []
    page.on("console", lambda message: lines.append(message.text))
    return lines


RESOLVE = f"{API}/resolve"
NOT_CONFIGURED = "urn:llmconfig:problem:not-configured"


def grant_clipboard(context: BrowserContext, panel: Panel) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=panel.base_url)


def token_row(panel: Panel, name: str) -> Locator:
    access = panel.page.get_by_role("tabpanel", name="Access")
    return access.get_by_role("row").filter(has=panel.page.get_by_role("rowheader", name=name))


def assert_nowhere_in_the_page(page: Page, token: str, console: list[str]) -> None:
    """The token is in no element, attribute, field value, storage, the URL or the console."""
    assert token not in page.content()
    values = page.evaluate("() => [...document.querySelectorAll('input, textarea')].map((field) => field.value)")
    assert not [value for value in values if token in value]
    storage = page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert token not in storage
    assert token not in page.url
    assert not [line for line in console if token in line]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------------------------ the whole life


def test_a_client_token_for_two_types_is_shown_once_works_for_those_types_and_is_refused_once_revoked(
    panel: Panel, context: BrowserContext, console: list[str]
) -> None:
    grant_clipboard(context, panel)
    page = panel.page
    panel.sign_in()
    access = panel.tab("Access")
    expect(token_row(panel, "test-admin")).to_contain_text("admin")
    expect(token_row(panel, "test-viewer")).to_contain_text("viewer")
    expect(token_row(panel, "test-admin").get_by_role("rowheader")).to_contain_text("this session")

    access.get_by_role("button", name="Create token").click()
    form = access.get_by_role("form", name="Create token")
    form.get_by_label("Name").fill("support-agents")
    form.get_by_label("Role").select_option("client")
    types = form.get_by_role("group", name="Interaction types")
    expect(types.get_by_role("checkbox")).to_have_count(len(BUILTIN_TYPES))
    types.get_by_label("reasoning").check()
    types.get_by_label("tools").check()
    form.get_by_role("button", name="Create token").click()

    dialog = page.get_by_role("dialog", name="Token created: support-agents")
    expect(dialog).to_contain_text("Store it now; it is not shown again.")
    field = dialog.get_by_label("New token")
    expect(field).to_have_attribute("readonly", "")
    expect(field).to_be_focused()
    token = field.input_value()
    assert re.fullmatch(r"llmc_[A-Za-z0-9_-]{43}", token)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog).to_contain_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    expect(panel.toast).to_have_text("Created client token support-agents")

    # The list behind the dialog already has the token: its first characters, never the token.
    row = token_row(panel, "support-agents")
    expect(row).to_contain_text("reasoning, tools")
    expect(row).to_contain_text(f"{token[:12]}…")
    expect(row).to_contain_text("never")
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()
    expect(access.get_by_role("button", name="Create token")).to_be_focused()
    assert_nowhere_in_the_page(page, token, console)

    # The token works for what it was made for, and for nothing else.
    with httpx.Client(base_url=panel.base_url, headers=bearer(token), timeout=10) as agent:
        # Admitted: the answer is about the configuration (nothing is configured here), not about the token.
        for allowed_type in ("reasoning", "tools"):
            allowed = agent.get(f"{RESOLVE}/{allowed_type}")
            assert (allowed.status_code, allowed.json()["type"]) == (404, NOT_CONFIGURED)
        limited = agent.get(f"{RESOLVE}/planning")
        assert limited.status_code == 403
        detail = limited.json()["detail"]
        assert detail == "This token may use only the interaction types reasoning, tools, not 'planning'"
        listing = agent.get(TOKENS)
        assert listing.status_code == 403
        assert listing.json()["detail"].startswith("This needs an admin token; client tokens may only")

        # Opened again, the tab shows when it was last used.
        panel.tab("Usage")
        panel.tab("Access")
        expect(row.get_by_role("cell").nth(4)).not_to_have_text("never")  # Role, Types, Starts with, Created, Last used

        row.get_by_role("button", name="Revoke support-agents").click()
        confirm = page.get_by_role("dialog", name="Revoke token?")
        expect(confirm).to_contain_text(f"Revoke client token support-agents ({token[:12]}…)?")
        confirm.get_by_role("button", name="Revoke").click()
        expect(confirm).to_be_hidden()
        expect(panel.toast).to_have_text("Revoked support-agents")
        expect(row.get_by_role("cell").nth(5)).to_contain_text("revoked")
        expect(row.get_by_role("button", name="Revoke")).to_have_count(0)

        refused = agent.get(f"{RESOLVE}/reasoning")
        assert refused.status_code == 401
        assert agent.get(TOKENS).status_code == 401

    [info] = [t for t in panel.http.get(TOKENS).json() if t["name"] == "support-agents"]
    assert (info["role"], info["interaction_types"]) == ("client", ["reasoning", "tools"])
    assert info["revoked_at"] is not None and info["last_used_at"] is not None
    assert_nowhere_in_the_page(page, token, console)


# ------------------------------------------------------------------------------------------------ keyboard


@on_sqlite
def test_a_token_is_created_copied_and_dismissed_by_keyboard_alone(
    panel: Panel, context: BrowserContext, console: list[str]
) -> None:
    grant_clipboard(context, panel)
    page, keyboard = panel.page, panel.page.keyboard
    panel.open()
    expect(page.get_by_label("Token", exact=True)).to_be_focused()
    keyboard.type(panel.api.admin_token)
    keyboard.press("Enter")
    expect(page.get_by_role("tab", name="Model Configuration")).to_be_focused()

    keyboard.press("End")  # the last tab
    expect(page.get_by_role("tab", name="Access")).to_be_focused()
    access = page.get_by_role("tabpanel", name="Access")
    expect(token_row(panel, "test-viewer")).to_be_visible()
    keyboard.press("Tab")
    toggle = access.get_by_role("button", name="Create token")
    expect(toggle).to_be_focused()
    keyboard.press("Enter")
    form = access.get_by_role("form", name="Create token")
    expect(form.get_by_label("Name")).to_be_focused()
    keyboard.type("planner")
    keyboard.press("Tab")
    expect(form.get_by_label("Role")).to_be_focused()
    expect(form.get_by_label("Role")).to_have_value("client")
    keyboard.press("Tab")
    types = form.get_by_role("group", name="Interaction types")
    expect(types.get_by_label("reasoning")).to_be_focused()
    keyboard.press("Tab")
    expect(types.get_by_label("tools")).to_be_focused()
    keyboard.press("Tab")
    keyboard.press("Tab")
    expect(types.get_by_label("planning")).to_be_focused()
    keyboard.press("Space")
    for _ in BUILTIN_TYPES[BUILTIN_TYPES.index("planning") :]:
        keyboard.press("Tab")
    expect(form.get_by_role("button", name="Create token")).to_be_focused()
    keyboard.press("Enter")

    dialog = page.get_by_role("dialog", name="Token created: planner")
    field = dialog.get_by_label("New token")
    expect(field).to_be_focused()
    token = field.input_value()
    selected = page.evaluate("() => [document.activeElement.selectionStart, document.activeElement.selectionEnd]")
    assert selected == [0, len(token)]  # selected, ready to copy with the keyboard shortcut too
    keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Copy")).to_be_focused()
    keyboard.press("Enter")
    expect(dialog).to_contain_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(toggle).to_be_focused()
    assert_nowhere_in_the_page(page, token, console)

    expect(token_row(panel, "planner")).to_contain_text("planning")
    [info] = [t for t in panel.http.get(TOKENS).json() if t["name"] == "planner"]
    assert (info["role"], info["interaction_types"]) == ("client", ["planning"])

    # Revoking works by keyboard too: the row's button, then the confirmation.
    revoke = token_row(panel, "planner").get_by_role("button", name="Revoke planner")
    revoke.focus()
    keyboard.press("Enter")
    confirm = page.get_by_role("dialog", name="Revoke token?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Revoke").focus()
    keyboard.press("Enter")
    expect(panel.toast).to_have_text("Revoked planner")
    expect(toggle).to_be_focused()
    with httpx.Client(base_url=panel.base_url, headers=bearer(token), timeout=10) as agent:
        assert agent.get(TOKENS).status_code == 401


# ------------------------------------------------------------------------------------------------ the form


@on_sqlite
def test_the_form_offers_types_only_for_client_tokens_and_shows_the_apis_errors_next_to_it(panel: Panel) -> None:
    panel.http.post(f"{API}/interaction-types", json={"name": "triage", "kind": "chat"}).raise_for_status()
    panel.sign_in()
    access = panel.tab("Access")
    access.get_by_role("button", name="Create token").click()
    form = access.get_by_role("form", name="Create token")
    types = form.get_by_role("group", name="Interaction types")
    role = form.get_by_label("Role")
    expect(role).to_have_accessible_description(re.compile("^For agents: resolves interaction types"))
    expect(types).to_contain_text("None ticked = all interaction types")
    role.select_option("viewer")
    expect(types).to_be_hidden()
    expect(role).to_have_accessible_description(re.compile("^Reads the configuration"))
    role.select_option("client")
    expect(types.get_by_label("triage")).to_be_visible()
    before = panel.http.get(TOKENS).json()

    # Nothing typed: said at once, nothing sent.
    form.get_by_role("button", name="Create token").click()
    expect(form.get_by_role("alert")).to_have_text("Give the token a name, so that you can tell it apart later.")
    name = form.get_by_label("Name")
    expect(name).to_be_focused()
    expect(name).to_have_attribute("aria-invalid", "true")

    # A name the API refuses (422 naming the field): its message next to the form, the field marked.
    name.fill("x" * 101)
    form.get_by_role("button", name="Create token").click()
    expect(form.get_by_role("alert")).to_have_text("Invalid input: name: String should have at most 100 characters")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()

    # A type deleted since the form was drawn (422 from the service, listing the known types).
    name.fill("triage-bot")
    types.get_by_label("triage").check()
    panel.http.delete(f"{API}/interaction-types/triage").raise_for_status()
    form.get_by_role("button", name="Create token").click()
    expect(form.get_by_role("alert")).to_contain_text("Unknown interaction type(s) 'triage'; known:")
    expect(name).not_to_have_attribute("aria-invalid", "true")
    expect(panel.page.get_by_role("dialog")).to_have_count(0)
    assert panel.http.get(TOKENS).json() == before

    # Cancel closes the form and gives the focus back to the button that opened it.
    form.get_by_role("button", name="Cancel").click()
    expect(form).to_be_hidden()
    expect(access.get_by_role("button", name="Create token")).to_be_focused()


# ------------------------------------------------------------------------------------------------ viewers


@on_sqlite
def test_a_viewer_is_told_that_tokens_need_an_admin_token(panel: Panel) -> None:
    panel.sign_in(panel.api.viewer_token)
    access = panel.tab("Access")
    expect(access.get_by_role("heading", name="An admin token is needed")).to_be_visible()
    expect(access).to_contain_text(
        "This needs an admin token; viewer tokens may only read the configuration, providers, audit and usage. "
        "Sign in with an admin token to list, create and revoke tokens."
    )
    expect(access.get_by_role("button", name="Create token")).to_be_hidden()
    expect(access.get_by_role("table")).to_be_hidden()
    expect(access).not_to_contain_text("test-admin")

    # Signing out and in as an admin shows the list; nothing of the viewer's note is left.
    panel.page.get_by_role("button", name="Sign out").click()
    panel.sign_in()
    access = panel.tab("Access")
    expect(token_row(panel, "test-viewer")).to_be_visible()
    expect(access.get_by_role("heading", name="An admin token is needed")).to_be_hidden()


@on_sqlite
def test_signing_out_leaves_no_token_list_behind_for_the_next_viewer(panel: Panel) -> None:
    panel.sign_in()
    panel.tab("Access")
    expect(token_row(panel, "test-viewer")).to_be_visible()
    panel.page.get_by_role("button", name="Sign out").click()
    assert "test-viewer" not in panel.page.locator("#panel-access").inner_html()


# ------------------------------------------------------------------------------------------------ phone


@on_sqlite
def test_the_tab_fits_a_phone_and_the_new_token_dialog_fits_its_screen(panel: Panel, console: list[str]) -> None:
    page = panel.page
    page.set_viewport_size(MOBILE)
    panel.sign_in()
    access = panel.tab("Access")
    tabs = page.get_by_role("tablist", name="Settings")
    assert tabs.evaluate("(list) => list.scrollWidth <= list.clientWidth")  # all five tabs in view
    row = token_row(panel, "test-viewer")
    starts_with = row.get_by_role("cell").nth(2)
    expect(starts_with).to_contain_text("llmc_")
    # The column headings are not shown on a phone: each cell names itself.
    assert starts_with.evaluate("(cell) => getComputedStyle(cell, '::before').content") == '"Starts with: "'
    assert page.evaluate("() => document.documentElement.scrollWidth") <= MOBILE["width"]
    box = row.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= MOBILE["width"]

    access.get_by_role("button", name="Create token").click()
    form = access.get_by_role("form", name="Create token")
    form.get_by_label("Name").fill("phone")
    form.get_by_role("button", name="Create token").click()
    dialog = page.get_by_role("dialog", name="Token created: phone")
    copy = dialog.get_by_role("button", name="Copy")
    expect(copy).to_be_visible()
    for part in (dialog, dialog.get_by_label("New token"), copy):
        box = part.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= MOBILE["width"], part
    token = dialog.get_by_label("New token").input_value()
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()  # closing is what empties the field
    assert_nowhere_in_the_page(page, token, console)
    expect(token_row(panel, "phone").get_by_role("cell").nth(1)).to_have_text("all")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= MOBILE["width"]
