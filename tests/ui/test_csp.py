"""The whole panel under its Content Security Policy, in a real Chromium: every tab and the main actions, with
every ``securitypolicyviolation`` event and every console error or warning recorded, and none allowed.

The listener is the ``reports`` fixture of conftest.py, which the tests of the other views use as well.
"""

from __future__ import annotations

import re

from playwright.sync_api import Route, expect

from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, Reports, on_sqlite


@on_sqlite
def test_every_tab_and_main_action_runs_under_the_policy_without_a_violation(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    page = panel.page
    response = page.goto(f"{panel.base_url}/")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_label("Token", exact=True).fill(panel.api.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("tablist", name="Settings")).to_be_visible()

    # Providers: add (which validates), validate again, refresh the models, open the edit form and cancel it.
    providers = panel.tab("Providers")
    providers.get_by_role("button", name="Add provider").click()
    providers.get_by_label("Name").fill("peer")
    providers.get_by_label("Type").select_option("openai")
    page.get_by_label("Base URL").fill(openai_peer.root_url)
    page.get_by_label("API key").fill(OPENAI_PEER_KEY)
    page.get_by_role("button", name="Add provider").last.click()
    row = panel.provider_row("peer")
    expect(row).to_contain_text("4 models available")
    row.get_by_role("button", name="Validate peer").click()
    expect(panel.toast).to_contain_text("peer: 4 models available")
    row.get_by_role("button", name="Refresh models of peer").click()
    expect(panel.toast).to_have_text("peer: 4 models")
    row.get_by_role("button", name="Edit peer").click()
    editing = page.locator("tr.editing")
    editing.get_by_label("Base URL").fill("http://127.0.0.2:9/v1")  # another origin: the key question appears
    expect(editing.get_by_label("Keep the stored key")).to_be_visible()
    editing.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Delete peer").click()
    page.get_by_role("dialog", name="Delete provider?").get_by_role("button", name="Cancel").click()

    # Model Configuration: pick a model, add a fallback, save twice; the history drawer restores the first.
    panel.tab("Model Configuration")
    card = panel.card("reasoning")
    card.get_by_label("Provider", exact=True).select_option(label="peer (openai)")
    card.get_by_label("Model", exact=True).select_option("gpt-4o")
    card.get_by_role("button", name="Add fallback").click()
    card.get_by_label("Fallback 1 provider").select_option(label="peer (openai)")
    card.get_by_label("Fallback 1 model").fill("gpt-4o-mini")
    card.get_by_role("button", name="Save").click()
    expect(panel.toast).to_have_text("Saved reasoning: peer / gpt-4o")
    card.get_by_label("Temperature").fill("0.4")
    card.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Version 2")
    card.get_by_role("button", name="History of reasoning").click()
    drawer = page.get_by_role("dialog", name="History of reasoning")
    expect(drawer.get_by_text("temperature: default → 0.4")).to_be_visible()
    drawer.get_by_role("button", name="Restore version 1").click()
    expect(panel.toast).to_contain_text("Restored version 1 of reasoning as version 3")

    # User overrides: show, set, clear.
    users = panel.tab("User overrides")
    users.get_by_label("User id").fill("u-7")
    users.get_by_role("button", name="Show effective configuration").click()
    table = users.get_by_role("table", name="Effective configuration of u-7")
    table.get_by_label("reasoning override provider").select_option(label="peer (openai)")
    table.get_by_label("reasoning override model").fill("gpt-4o-mini")
    table.get_by_role("button", name="Set override").first.click()
    expect(panel.toast).to_have_text("Override saved for u-7: reasoning")
    table.get_by_role("button", name="Clear reasoning override").click()
    expect(panel.toast).to_have_text("Override cleared for u-7: reasoning")

    # Usage: real calls, so that the charts and their legends (coloured by classes) are drawn.
    for _ in range(2):
        panel.api.service.get_llm("reasoning").invoke("two calls")
    assert panel.api.service.usage_recorder.flush()
    usage = panel.tab("Usage")
    usage.get_by_role("button", name="Refresh").click()
    expect(usage.get_by_role("img", name="Latency per model")).to_be_visible()
    expect(usage.locator("#chart-calls .legend")).to_contain_text("reasoning")
    # Read in one step in the page: a legend drawn again between finding a swatch and reading its style would
    # leave a detached element, whose computed style is empty.
    colour = page.wait_for_function(
        """() => {
            const swatch = document.querySelector("#chart-calls .legend span");
            return swatch && getComputedStyle(swatch, "::before").backgroundColor;
        }"""
    ).json_value()

    # Access: create a client token for one type, copy it from the dialog, dismiss it, revoke it.
    access = panel.tab("Access")
    access.get_by_role("button", name="Create token").click()
    form = access.get_by_role("form", name="Create token")
    form.get_by_label("Name").fill("agents")
    form.get_by_label("reasoning").check()
    form.get_by_role("button", name="Create token").click()
    created = page.get_by_role("dialog", name="Token created: agents")
    created.get_by_role("button", name="Copy").click()
    expect(created.get_by_text(re.compile("Copied to the clipboard|did not allow copying"))).to_be_visible()
    created.get_by_role("button", name="Done").click()
    agents = access.get_by_role("row").filter(has=page.get_by_role("rowheader", name="agents"))
    agents.get_by_role("button", name="Revoke agents").click()
    page.get_by_role("dialog", name="Revoke token?").get_by_role("button", name="Revoke").click()
    expect(agents).to_contain_text("revoked")

    # A reload keeps the session (and the tab); signing out shows the form again.
    page.reload()
    expect(agents).to_contain_text("revoked")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Token", exact=True)).to_be_visible()

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"
    assert colour == "rgb(47, 91, 234)"  # the first series' colour, from css/usage.css


SWAGGER_STUB = """
window.SwaggerUIBundle = (config) => {
  document.getElementById("swagger-ui").textContent = `Swagger UI for ${config.url}`;
};
SwaggerUIBundle.presets = { apis: {} };
SwaggerUIBundle.SwaggerUIStandalonePreset = {};
"""


@on_sqlite
def test_the_documentation_page_starts_under_its_own_policy(panel: Panel, reports: Reports) -> None:
    """The machine has no network: the CDN's Swagger UI is replaced by a stub that shows it was started.

    What is checked is the policy: the CDN script may load and the page's inline script runs (allowed by its
    hash), with no violation reported.
    """

    def cdn(route: Route) -> None:
        if route.request.url.endswith(".js"):
            route.fulfill(body=SWAGGER_STUB, content_type="text/javascript")
        else:
            route.fulfill(body="#swagger-ui { margin: 0 }", content_type="text/css")

    page = panel.page
    page.route("https://cdn.jsdelivr.net/**", cdn)
    page.route("https://fastapi.tiangolo.com/**", lambda route: route.fulfill(status=204))
    page.goto(f"{panel.base_url}/docs")
    expect(page.locator("#swagger-ui")).to_have_text("Swagger UI for /openapi.json")
    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"
