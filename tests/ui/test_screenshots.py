"""The README's screenshots of the panel, taken from a realistic setup, the same on every run.

Two providers (a vLLM-like OpenAI-compatible server and Anthropic, both loopback peers) are added
and validated through the API, and every built-in interaction type is configured by an admin named
"alice". The peers listen on random ports and everything carries the time it happened, so before
taking the pictures the test pins, in the database, the base URLs to what a real deployment would
show and the timestamps to a fixed moment. Locale and time zone are fixed by the browser context.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import update

from llmconfig.db.models import GlobalConfig, Provider
from llmconfig.tokens import TokenService
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.ui.conftest import DESKTOP, MOBILE, Panel, on_sqlite

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VLLM_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "BAAI/bge-m3")
SHOWN_URLS = {"local-vllm": "http://localhost:8000/v1", "anthropic": "https://api.anthropic.com"}
VALIDATED_AT = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
CHANGED_AT = datetime(2025, 6, 2, 10, 15, tzinfo=UTC)


@pytest.fixture
def vllm_peer() -> Iterator[OpenAIPeer]:
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, models=VLLM_MODELS, name="local-vllm") as peer:
        yield peer


def arrange(panel: Panel, vllm: OpenAIPeer, anthropic: AnthropicPeer) -> str:
    """Providers and configuration as an operator would have them; returns alice's admin token."""
    token, _ = TokenService(sessions=panel.api.service.sessions).create(role="admin", name="alice")
    panel.http.headers["Authorization"] = f"Bearer {token}"
    local = panel.add_provider("local-vllm", "custom", vllm.base_url, OPENAI_PEER_KEY)["id"]
    claude = panel.add_provider("anthropic", "anthropic", anthropic.root_url, ANTHROPIC_PEER_KEY)["id"]
    llama, qwen, bge = VLLM_MODELS
    panel.set_config(
        "reasoning",
        provider_id=claude,
        model_name="claude-sonnet-4-5",
        temperature=0.7,
        max_tokens=4096,
        fallbacks=[{"provider_id": local, "model_name": llama}],
    )
    panel.set_config("tools", provider_id=local, model_name=qwen, temperature=0.1, max_tokens=2048)
    panel.set_config("subagents", provider_id=claude, model_name="claude-haiku-4-5", temperature=0.5)
    panel.set_config("planning", provider_id=claude, model_name="claude-sonnet-4-5", temperature=0.2)
    panel.set_config("embeddings", provider_id=local, model_name=bge)

    with panel.api.service.engine.begin() as connection:
        for name, url in SHOWN_URLS.items():
            connection.execute(
                update(Provider)
                .where(Provider.name == name)
                .values(api_base_url=url, validated_at=VALIDATED_AT, updated_at=VALIDATED_AT)
            )
        connection.execute(update(GlobalConfig).values(updated_at=CHANGED_AT))
    return token


def signed_in_context(browser: Browser, token: str, *, mobile: bool) -> BrowserContext:
    context = browser.new_context(
        viewport=MOBILE if mobile else DESKTOP,
        is_mobile=mobile,
        has_touch=mobile,
        device_scale_factor=1,
        locale="en-US",
        timezone_id="UTC",
    )
    # Signing in through the form is covered elsewhere; here the token is simply in sessionStorage.
    context.add_init_script(f"sessionStorage.setItem('llmconfig.token', {token!r})")
    return context


def shoot(page: Page, name: str) -> None:
    page.evaluate("document.fonts.ready")
    page.screenshot(path=SCREENSHOTS / name, animations="disabled", caret="hide")


@on_sqlite
def test_screenshots_of_the_panel_for_the_readme(
    panel: Panel, browser: Browser, vllm_peer: OpenAIPeer, anthropic_peer: AnthropicPeer
) -> None:
    token = arrange(panel, vllm_peer, anthropic_peer)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    for mobile, suffix in ((False, "desktop"), (True, "mobile")):
        context = signed_in_context(browser, token, mobile=mobile)
        try:
            page = context.new_page()
            page.goto(f"{panel.base_url}/")
            reasoning = page.get_by_role("article", name="reasoning", exact=True)
            expect(reasoning.get_by_label("Model", exact=True)).to_have_value("claude-sonnet-4-5")
            expect(reasoning.get_by_label("Fallback 1 model")).to_have_value(VLLM_MODELS[0])
            shoot(page, f"model-configuration-{suffix}.png")

            page.get_by_role("tab", name="Providers").click()
            rows = page.get_by_role("tabpanel", name="Providers").get_by_role("row")
            expect(rows.filter(has_text="local-vllm")).to_contain_text("checked 6/2/2025, 9:30:00 AM")
            expect(rows.filter(has_text="anthropic")).to_contain_text("ok")
            page.mouse.move(0, 0)  # no hover effect on whatever was clicked
            shoot(page, f"providers-{suffix}.png")
        finally:
            context.close()

    for name in ("model-configuration", "providers"):
        for suffix in ("desktop", "mobile"):
            assert (SCREENSHOTS / f"{name}-{suffix}.png").stat().st_size > 10_000
