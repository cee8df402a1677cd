"""Fixtures for the end-to-end tests of the web panel: Debian's Chromium driven by Playwright.

The panel is served by a real uvicorn (``live_server``, shared with the API tests) over a migrated
database; Chromium runs headless with everything that would talk to the internet turned off. One
browser for the whole session, a fresh context (cookies, sessionStorage) for every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, expect, sync_playwright

from tests.api.conftest import API, ApiContext
from tests.api.conftest import api as api  # re-exported fixture: the app over SQLite/PostgreSQL + tokens
from tests.api.conftest import live_server as live_server  # re-exported fixture: that app on a real uvicorn
from tests.helpers import OPENAI_PEER_KEY

CHROMIUM = Path("/usr/bin/chromium")
# This machine (and CI) has no network: without these Chromium keeps trying to reach Google services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    While the session's Playwright driver is alive, its sync API leaves an asyncio loop marked as
    running in the main thread, which would break async tests (and ``asyncio.run``) collected after
    these. Stable sort: everything else keeps its order.
    """
    ui_dir = Path(__file__).parent
    items.sort(key=lambda item: ui_dir in Path(item.path).parents)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/ensure-system-deps.sh (installs Debian's chromium).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # Fixed locale and time zone, so that dates render the same on every machine.
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab of the test's context; a JavaScript error in the panel fails the test."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    assert not errors, f"JavaScript errors in the panel: {errors}"


REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}`,
  );
});
"""


@dataclass
class Reports:
    violations: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def none(self, *, refused: tuple[int, ...] = ()) -> bool:
        """No violation and no console error or warning, except Chromium's note of each answer with a status
        in ``refused`` (a test that makes the server refuse something expects those)."""
        expected = tuple(f"the server responded with a status of {status} " for status in refused)
        unexpected = [line for line in self.console if not any(text in line for text in expected)]
        return not self.violations and not unexpected


@pytest.fixture
def reports(page: Page) -> Reports:
    """Every ``securitypolicyviolation`` event and console error or warning of the test's tab.

    The listener is installed by an init script, so it is in place before the panel's first script runs, on
    every page the test loads; it reports through a binding to the test, so reloads lose nothing.
    """
    found = Reports()
    page.expose_function("reportViolation", lambda text: found.violations.append(str(text)))
    page.add_init_script(REPORT_VIOLATIONS)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            found.console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    return found


@dataclass
class Panel:
    """The panel in one browser tab, plus an admin HTTP client for arranging state and checking it."""

    page: Page
    base_url: str
    api: ApiContext
    http: httpx.Client = field(repr=False)

    # -- browser side -------------------------------------------------------------------------------

    def open(self) -> None:
        self.page.goto(f"{self.base_url}/")

    def sign_in(self, token: str | None = None) -> None:
        """Open the panel and sign in with ``token`` (the admin token by default) through the form."""
        self.open()
        self.page.get_by_label("Token", exact=True).fill(token or self.api.admin_token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("tablist", name="Settings")).to_be_visible()

    def tab(self, name: str) -> Locator:
        """Switch to the tab called ``name`` with the mouse and return its panel."""
        self.page.get_by_role("tab", name=name).click()
        expect(self.page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")
        return self.page.get_by_role("tabpanel", name=name)

    def card(self, interaction_type: str) -> Locator:
        return self.page.get_by_role("article", name=interaction_type, exact=True)

    def provider_row(self, name: str) -> Locator:
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("rowheader", name=name, exact=True))

    @property
    def toast(self) -> Locator:
        return self.page.get_by_role("status")

    # -- API side -----------------------------------------------------------------------------------

    def add_provider(self, name: str, provider_type: str, base_url: str, api_key: str | None) -> dict[str, Any]:
        """Add a provider through the API, validated (so its models are discovered)."""
        body: dict[str, Any] = {"name": name, "provider_type": provider_type, "api_base_url": base_url}
        if api_key:
            body["api_key"] = api_key
        response = self.http.post(f"{API}/providers", params={"validate": "true"}, json=body)
        assert response.status_code == 201, response.text
        provider: dict[str, Any] = response.json()
        return provider

    def config(self) -> dict[str, Any]:
        response = self.http.get(f"{API}/config")
        assert response.status_code == 200, response.text
        config: dict[str, Any] = response.json()
        return config

    def reasoning_on_peer(self, root_url: str) -> dict[str, Any]:
        """Provider ``peer`` (the OpenAI peer at ``root_url``) answering ``reasoning`` with gpt-4o; returns it."""
        provider = self.add_provider("peer", "openai", root_url, OPENAI_PEER_KEY)
        self.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o")
        return provider

    def set_config(self, interaction_type: str, **body: Any) -> dict[str, Any]:
        """PUT the global configuration of one type, based on its current version."""
        current = self.config().get(interaction_type)
        body.setdefault("version", current["version"] if current else 0)
        response = self.http.put(f"{API}/config/{interaction_type}", json=body)
        assert response.status_code == 200, response.text
        entry: dict[str, Any] = response.json()
        return entry


@pytest.fixture
def panel(page: Page, live_server: str, api: ApiContext) -> Iterator[Panel]:
    with httpx.Client(base_url=live_server, headers=api.admin, timeout=10) as http:
        yield Panel(page=page, base_url=live_server, api=api, http=http)


# Most behaviour does not depend on the database; those tests run on SQLite only, to stay fast.
on_sqlite = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
