"""The README's screenshots of the panel, taken from a realistic setup, the same on every run.

Two providers (a vLLM-like OpenAI-compatible server and Anthropic, both loopback peers) are added
and validated through the API, every built-in interaction type is configured (reasoning with a
variant taking a fifth of the traffic), two groups get entries and members, the usage of both
variants is recorded, four budgets are set and a few API tokens are made, all by an admin named
"alice". The peers listen on random ports, tokens are random and
everything carries the time it happened, so before taking the pictures the test pins, in the
database, the base URLs to what a real deployment would show, the tokens' first characters to fixed
ones and the timestamps to fixed moments. Locale and time zone are fixed by the browser context.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from sqlalchemy import update

from llmconfig.db.models import ApiToken, GlobalConfig, GroupConfig, Provider, UsageRecord
from llmconfig.tokens import hash_token
from tests.api.conftest import API
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY
from tests.peers import AnthropicPeer, OpenAIPeer
from tests.ui.conftest import DESKTOP, MOBILE, Panel, on_sqlite

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VLLM_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "BAAI/bge-m3")
SHOWN_URLS = {"local-vllm": "http://localhost:8000/v1", "anthropic": "https://api.anthropic.com"}
VALIDATED_AT = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
CHANGED_AT = datetime(2025, 6, 2, 10, 15, tzinfo=UTC)
# alice's token is fixed (it signs the pictures' session in), so that its row can say "this session".
ALICE_TOKEN = "llmc_A1ic3xScreenshotsOfThePanelForTheReadme0"
# name: (role, interaction types, first characters, created, last used, revoked); the fixture's own
# test-admin and test-viewer tokens are renamed to ci-deploy and grafana.
SHOWN_TOKENS: dict[str, tuple[str, list[str] | None, str, datetime, datetime | None, datetime | None]] = {
    "alice": ("admin", None, ALICE_TOKEN[:12], datetime(2025, 5, 12, 8, 0, tzinfo=UTC), CHANGED_AT, None),
    "ci-deploy": ("admin", None, "llmc_Vd3kQp2", datetime(2025, 5, 12, 8, 5, tzinfo=UTC), None, None),
    "grafana": ("viewer", None, "llmc_g7RfXw0", datetime(2025, 5, 14, 13, 20, tzinfo=UTC), CHANGED_AT, None),
    "support-agents": (
        "client",
        ["reasoning", "tools"],
        "llmc_Tq8mZs4",
        datetime(2025, 5, 20, 16, 45, tzinfo=UTC),
        CHANGED_AT + timedelta(minutes=3),
        None,
    ),
    "batch-embeddings": (
        "client",
        ["embeddings"],
        "llmc_b2NcLe9",
        datetime(2025, 5, 28, 11, 10, tzinfo=UTC),
        datetime(2025, 6, 1, 23, 58, tzinfo=UTC),
        None,
    ),
    "old-laptop": (
        "admin",
        None,
        "llmc_Hy5uWa1",
        datetime(2025, 4, 2, 9, 0, tzinfo=UTC),
        datetime(2025, 5, 30, 17, 2, tzinfo=UTC),
        datetime(2025, 6, 1, 8, 30, tzinfo=UTC),
    ),
}


SHOWN_MEMBERS = {"u-1042": ["support-team"], "u-2077": ["research", "support-team"], "u-3001": ["support-team"]}


@pytest.fixture
def vllm_peer() -> Iterator[OpenAIPeer]:
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, models=VLLM_MODELS, name="local-vllm") as peer:
        yield peer


def arrange(panel: Panel, vllm: OpenAIPeer, anthropic: AnthropicPeer) -> str:
    """Providers, configuration and tokens as an operator would have them; returns alice's admin token."""
    with panel.api.service.sessions.begin() as session:
        session.add(
            ApiToken(
                name="alice",
                role="admin",
                token_hash=hash_token(ALICE_TOKEN),
                token_prefix=ALICE_TOKEN[:12],
                created_by="token:bootstrap-admin",
            )
        )
    panel.http.headers["Authorization"] = f"Bearer {ALICE_TOKEN}"
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
        weight=80,
        variants=[{"name": "qwen-trial", "provider_id": local, "model_name": qwen, "weight": 20}],
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
    arrange_groups(panel, local, claude)
    arrange_usage(panel, local, claude)
    arrange_budgets(panel, local)
    with panel.api.service.engine.begin() as connection:
        connection.execute(update(GlobalConfig).values(updated_at=CHANGED_AT))
        connection.execute(update(GroupConfig).values(updated_at=CHANGED_AT))
    arrange_tokens(panel)
    return ALICE_TOKEN


def put(panel: Panel, path: str, body: dict[str, Any]) -> None:
    response = panel.http.put(f"{API}{path}", json=body)
    assert response.status_code == 200, response.text


def arrange_groups(panel: Panel, local: str, claude: str) -> None:
    """support-team answers on the fast models; research plans with the bigger one. u-2077 is in both."""
    llama = VLLM_MODELS[0]
    put(panel, "/groups/support-team/config/reasoning", {"provider_id": claude, "model_name": "claude-haiku-4-5"})
    put(panel, "/groups/support-team/config/tools", {"provider_id": local, "model_name": llama, "temperature": 0})
    put(panel, "/groups/research/config/planning", {"provider_id": claude, "model_name": "claude-sonnet-4-5"})
    for user_id, groups in SHOWN_MEMBERS.items():
        put(panel, f"/users/{user_id}/groups", {"groups": groups})


def arrange_usage(panel: Panel, local: str, claude: str) -> None:
    """The calls of reasoning's two variants (and of tools) over the last hour, with fixed figures."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = max(now - timedelta(hours=1), now.replace(minute=0))  # within this hour: every budget counts them
    _, qwen, _ = VLLM_MODELS
    calls = [
        # (type, variant, user, provider id, provider, model, calls, prompt, completion, latencies, errors, cost)
        ("reasoning", "main", "u-1042", claude, "anthropic", "claude-sonnet-4-5", 48, 1200, 380, 2100, 1, 0.0093),
        ("reasoning", "qwen-trial", "u-3001", local, "local-vllm", qwen, 12, 1180, 420, 640, 2, 0.0),
        ("tools", None, "u-1042", local, "local-vllm", qwen, 30, 600, 90, 310, 0, 0.0),
    ]
    with panel.api.service.sessions.begin() as session:
        for (
            kind,
            variant,
            user_id,
            provider_id,
            provider,
            model,
            count,
            prompt,
            completion,
            latency,
            errors,
            cost,
        ) in calls:
            for n in range(count):
                session.add(
                    UsageRecord(
                        at=start + timedelta(seconds=n),
                        interaction_type=kind,
                        user_id=user_id,
                        provider_id=provider_id,
                        provider_name=provider,
                        model_name=model,
                        prompt_tokens=prompt + 10 * (n % 5),
                        completion_tokens=completion,
                        latency_ms=float(latency + 40 * (n % 7)),
                        success=n >= errors,
                        error_class=None if n >= errors else "APITimeoutError",
                        cost_usd=cost,
                        variant=variant,
                    )
                )


def arrange_budgets(panel: Panel, local: str) -> None:
    _, qwen, _ = VLLM_MODELS
    put(panel, "/budgets/type:reasoning", {"period": "day", "limit_usd": 1.5})
    put(
        panel,
        "/budgets/group:support-team",
        {"period": "month", "limit_usd": 0.5, "on_exceed": {"provider_id": local, "model_name": qwen}},
    )
    put(panel, "/budgets/user:u-1042", {"period": "day", "limit_tokens": 80_000})
    put(panel, "/budgets/provider:anthropic", {"period": "month", "limit_usd": 2, "limit_tokens": 200_000})


def arrange_tokens(panel: Panel) -> None:
    """The tokens of SHOWN_TOKENS: made over REST by alice (one of them revoked), then pinned."""
    for name, (role, types, *_) in SHOWN_TOKENS.items():
        if name in ("alice", "ci-deploy", "grafana"):
            continue
        body = {"name": name, "role": role, **({"interaction_types": types} if types else {})}
        created = panel.http.post(f"{API}/tokens", json=body)
        assert created.status_code == 201, created.text
    [old] = [t for t in panel.http.get(f"{API}/tokens").json() if t["name"] == "old-laptop"]
    assert panel.http.delete(f"{API}/tokens/{old['id']}").status_code == 204
    with panel.api.service.engine.begin() as connection:
        renamed = {"test-admin": ("ci-deploy", "cli:ops"), "test-viewer": ("grafana", "cli:ops")}
        for name, (new_name, created_by) in renamed.items():
            connection.execute(
                update(ApiToken).where(ApiToken.name == name).values(name=new_name, created_by=created_by)
            )
        for name, (_, _, prefix, created, used, revoked) in SHOWN_TOKENS.items():
            connection.execute(
                update(ApiToken)
                .where(ApiToken.name == name)
                .values(token_prefix=prefix, created_at=created, last_used_at=used, revoked_at=revoked)
            )


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


def token_row(page: Page, name: str) -> Locator:
    access = page.get_by_role("tabpanel", name="Access")
    return access.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name))


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.evaluate("document.fonts.ready")
    page.screenshot(path=SCREENSHOTS / name, animations="disabled", caret="hide", full_page=full_page)


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

            page.get_by_role("tab", name="Access").click()
            access = page.get_by_role("tabpanel", name="Access")
            expect(token_row(page, "support-agents")).to_contain_text("reasoning, tools")
            expect(token_row(page, "support-agents")).to_contain_text("Jun 2, 2025, 10:18 AM")
            expect(token_row(page, "old-laptop")).to_contain_text("revoked")
            expect(token_row(page, "alice")).to_contain_text("this session")
            if not mobile:  # the form beside the list; on a phone it would push the list off the screen
                access.get_by_role("button", name="Create token").click()
                form = access.get_by_role("form", name="Create token")
                form.get_by_label("Name").fill("research-agents")
                form.get_by_label("reasoning").check()
                form.get_by_label("planning").check()
            page.mouse.move(0, 0)
            shoot(page, f"access-{suffix}.png", full_page=not mobile)
        finally:
            context.close()

    shoot_teams(browser, panel.base_url, token)

    for name in ("model-configuration", "providers", "access"):
        for suffix in ("desktop", "mobile"):
            assert (SCREENSHOTS / f"{name}-{suffix}.png").stat().st_size > 10_000
    for name in ("groups", "user-groups", "variants", "variant-comparison", "budgets"):
        assert (SCREENSHOTS / f"{name}-desktop.png").stat().st_size > 10_000
    for name in ("groups", "budgets"):
        assert (SCREENSHOTS / f"{name}-mobile.png").stat().st_size > 10_000


def shoot_teams(browser: Browser, base_url: str, token: str) -> None:
    """Groups, a user's groups, the variants of an entry, their comparison and the budgets, on a desktop."""
    context = signed_in_context(browser, token, mobile=False)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/")
        reasoning = page.get_by_role("article", name="reasoning", exact=True)
        expect(reasoning.get_by_label("Variant 1 name")).to_have_value("qwen-trial")
        expect(reasoning.locator(".variant-main .share")).to_have_text("80%")
        page.mouse.move(0, 0)
        reasoning.screenshot(path=SCREENSHOTS / "variants-desktop.png", animations="disabled", caret="hide")

        page.get_by_role("tab", name="Groups").click()
        groups = page.get_by_role("tabpanel", name="Groups")
        groups.get_by_role("button", name="Edit support-team").click()
        detail = groups.get_by_role("region", name="Entries of support-team")
        expect(detail.get_by_role("article", name="tools", exact=True)).to_contain_text("Version 1")
        page.mouse.move(0, 0)
        shoot(page, "groups-desktop.png", full_page=True)

        page.get_by_role("tab", name="User overrides").click()
        users = page.get_by_role("tabpanel", name="User overrides")
        users.get_by_label("User id").fill("u-2077")
        users.get_by_role("button", name="Show effective configuration").click()
        expect(users.get_by_role("table", name="Effective configuration of u-2077")).to_contain_text("group research")
        page.mouse.move(0, 0)
        shoot(page, "user-groups-desktop.png", full_page=True)

        page.get_by_role("tab", name="Usage").click()
        comparison = page.get_by_role("region", name="Variants compared")
        expect(comparison.locator("tbody tr")).to_have_count(2)
        page.mouse.move(0, 0)
        comparison.screenshot(path=SCREENSHOTS / "variant-comparison-desktop.png", animations="disabled")

        page.get_by_role("tab", name="Budgets").click()
        budgets = page.get_by_role("tabpanel", name="Budgets")
        expect(budgets.locator("tbody tr")).to_have_count(4)
        expect(budgets.get_by_role("row").filter(has_text="user:u-1042")).to_contain_text("exceeded")
        page.mouse.move(0, 0)
        shoot(page, "budgets-desktop.png")
    finally:
        context.close()

    # On a phone: one card per group and per budget.
    context = signed_in_context(browser, token, mobile=True)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/#groups")
        expect(page.get_by_role("tabpanel", name="Groups").get_by_role("row", name="support-team")).to_be_visible()
        shoot(page, "groups-mobile.png")
        page.get_by_role("tab", name="Budgets").click()
        expect(page.get_by_role("tabpanel", name="Budgets").locator("tbody tr")).to_have_count(4)
        page.mouse.move(0, 0)
        shoot(page, "budgets-mobile.png")
    finally:
        context.close()
