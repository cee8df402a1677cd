"""The variants compared on the Usage tab, in a real Chromium, from calls made through the library to the
loopback OpenAI peer: one row per variant with its calls, errors, latency, tokens and cost per call."""

from __future__ import annotations

import math

from playwright.sync_api import expect

from tests.api.conftest import API
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, Reports, on_sqlite


def users_of_each_variant(panel: Panel, variants: set[str]) -> dict[str, str]:
    """A user id that gets each of ``variants`` (the choice is fixed per user), as the server reports it."""
    found: dict[str, str] = {}
    for n in range(200):
        user_id = f"u-{n}"
        chosen = panel.http.get(f"{API}/users/{user_id}/config").json()["reasoning"]["variant"]
        found.setdefault(chosen, user_id)
        if set(found) == variants:
            return found
    raise AssertionError(f"no user among 200 gets each of {variants}: {found}")


@on_sqlite
def shown_ms(value: float) -> str:
    """A latency as the panel shows it: JavaScript's Math.round, which takes halves up (Python's round takes them
    to the even neighbour, and a median of two calls often ends in .5)."""
    return str(math.floor(value + 0.5))


def test_calls_of_two_variants_are_compared_side_by_side_and_entries_without_variants_left_out(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    mini = {"name": "mini", "provider_id": provider["id"], "model_name": "gpt-4o-mini", "weight": 1}
    panel.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o", weight=1, variants=[mini])
    panel.set_config("tools", provider_id=provider["id"], model_name="gpt-4o")  # no variants: not compared
    users = users_of_each_variant(panel, {"main", "mini"})
    service = panel.api.service
    service.get_llm("tools").invoke("a call without variants")
    for variant, calls in (("main", 3), ("mini", 2)):
        for _ in range(calls):
            service.get_llm("reasoning", user_id=users[variant]).invoke("compare the variants")
    assert service.flush_usage()
    report = panel.http.get(f"{API}/usage", params={"group_by": ["interaction_type", "variant"]}).json()
    figures = {g["keys"][1]: g for g in report["groups"]}
    assert {name: g["calls"] for name, g in figures.items()} == {"main": 3, "mini": 2, "(none)": 1}
    panel.sign_in()

    usage = panel.tab("Usage")
    table = usage.get_by_role("table", name="Variants compared")
    expect(table.get_by_role("columnheader")).to_have_text(
        [
            "Interaction type",
            "Variant",
            "Calls",
            "Errors",
            "Latency p50 (ms)",
            "Latency p95 (ms)",
            "Tokens per call",
            "Cost per call (USD)",
        ]
    )
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    for index, name in enumerate(("main", "mini")):  # the busier variant first
        g = figures[name]
        expect(rows.nth(index).get_by_role("cell")).to_have_text(
            [
                "reasoning",
                str(g["calls"]),
                "0",
                shown_ms(g["latency_p50_ms"]),
                shown_ms(g["latency_p95_ms"]),
                f"{g['tokens_per_call']:.1f}",
                f"${g['cost_per_call_usd']:.6f}",
            ]
        )
        expect(rows.nth(index).get_by_role("rowheader")).to_have_text(name)
    assert figures["main"]["cost_per_call_usd"] > figures["mini"]["cost_per_call_usd"] > 0

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"
