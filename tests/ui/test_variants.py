"""Weighted variants in the entry cards, in a real Chromium: added with their weights and shares, stored, the
parameters the form does not edit kept, and the server's 422 shown naming the variant, with nothing stored."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, expect

from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, Reports, on_sqlite


def variant(card: Locator, n: int) -> Locator:
    return card.locator(".variants li").nth(n - 1)


@on_sqlite
def test_a_variant_added_with_a_weight_is_stored_and_each_share_of_the_traffic_shown(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    panel.reasoning_on_peer(openai_peer.root_url)
    panel.sign_in()
    card = panel.card("reasoning")
    main_share = card.locator(".variant-main .share")
    expect(card.get_by_label("Main weight")).to_have_value("100")
    expect(main_share).to_have_text("100%")

    card.get_by_role("button", name="Add variant").click()
    expect(card.get_by_label("Variant 1 name")).to_be_focused()
    card.get_by_label("Variant 1 name").fill("mini")
    card.get_by_label("Variant 1 provider").select_option(label="peer (openai)")
    card.get_by_label("Variant 1 model").fill("gpt-4o-mini")
    card.get_by_label("Variant 1 weight").fill("25")
    card.get_by_label("Main weight").fill("75")
    expect(main_share).to_have_text("75%")
    expect(variant(card, 1).locator(".share")).to_have_text("25%")
    # A second variant: every share follows the total.
    card.get_by_role("button", name="Add variant").click()
    card.get_by_label("Variant 2 name").fill("local")
    card.get_by_label("Variant 2 provider").select_option(label="peer (openai)")
    card.get_by_label("Variant 2 model").fill("local-chat")
    card.get_by_label("Variant 2 weight").fill("50")
    expect(main_share).to_have_text("50%")
    expect(variant(card, 1).locator(".share")).to_have_text("16.7%")
    expect(variant(card, 2).locator(".share")).to_have_text("33.3%")
    card.get_by_role("button", name="Remove variant 2").click()
    expect(main_share).to_have_text("75%")

    card.get_by_role("button", name="Save").click()
    expect(panel.toast).to_have_text("Saved reasoning: peer / gpt-4o")
    expect(card).to_contain_text("Version 2")
    stored = panel.config()["reasoning"]
    assert stored["weight"] == 75
    assert [(v["name"], v["provider_name"], v["model_name"], v["weight"]) for v in stored["variants"]] == [
        ("mini", "peer", "gpt-4o-mini", 25)
    ]

    # A reload shows what was stored.
    panel.page.reload()
    expect(card.get_by_label("Variant 1 name")).to_have_value("mini")
    expect(card.get_by_label("Variant 1 model")).to_have_value("gpt-4o-mini")
    expect(card.get_by_label("Variant 1 weight")).to_have_value("25")
    expect(variant(card, 1).locator(".share")).to_have_text("25%")

    # Removing the variant and saving leaves the main model alone again.
    card.get_by_role("button", name="Remove variant 1").click()
    card.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Version 3")
    assert panel.config()["reasoning"]["variants"] == []

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"


@on_sqlite
def test_a_variants_parameters_set_through_the_api_survive_a_weight_change_in_the_panel(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    provider = panel.add_provider("peer", "openai", openai_peer.root_url, OPENAI_PEER_KEY)
    canary: dict[str, Any] = {
        "name": "canary",
        "provider_id": provider["id"],
        "model_name": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 300,
        "weight": 10,
    }
    panel.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o", weight=90, variants=[canary])
    panel.sign_in()
    card = panel.card("reasoning")
    expect(card.get_by_label("Main weight")).to_have_value("90")
    expect(variant(card, 1).locator(".share")).to_have_text("10%")

    card.get_by_label("Variant 1 weight").fill("30")
    expect(card.locator(".variant-main .share")).to_have_text("75%")
    card.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Version 2")
    [stored] = panel.config()["reasoning"]["variants"]
    assert (stored["weight"], stored["temperature"], stored["max_tokens"]) == (30, 0.2, 300)

    assert reports.none(), f"violations: {reports.violations}; console: {reports.console}"


@on_sqlite
def test_the_servers_422_names_the_variant_next_to_the_form_and_nothing_is_stored(
    panel: Panel, reports: Reports, openai_peer: OpenAIPeer
) -> None:
    panel.reasoning_on_peer(openai_peer.root_url)
    panel.sign_in()
    card = panel.card("reasoning")
    error = card.get_by_role("alert")

    card.get_by_role("button", name="Add variant").click()
    card.get_by_label("Variant 1 name").fill("canary")
    card.get_by_label("Variant 1 provider").select_option(label="peer (openai)")
    card.get_by_label("Variant 1 model").fill("gpt-4o-mini")
    card.get_by_label("Variant 1 weight").fill("0")
    expect(variant(card, 1).locator(".share")).to_have_text("—")
    card.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("variant 'canary'")
    expect(error).to_contain_text("the weight must be a whole number from 1 to 1,000,000, not 0")
    expect(variant(card, 1)).to_have_attribute("aria-invalid", "true")

    # A model of the wrong kind: an embeddings model as a variant of a chat type.
    card.get_by_label("Variant 1 weight").fill("5")
    card.get_by_label("Variant 1 model").fill("text-embedding-3-small")
    card.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("Variant 'canary'")
    expect(error).to_contain_text("text-embedding-3-small")

    # The main model's weight is checked too, and named as the entry's own.
    card.get_by_label("Variant 1 model").fill("gpt-4o-mini")
    card.get_by_label("Main weight").fill("-3")
    card.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("variant 'main' (the entry's own model)")
    expect(card.get_by_label("Main weight")).to_have_attribute("aria-invalid", "true")
    expect(variant(card, 1)).not_to_have_attribute("aria-invalid", "true")

    entry = panel.config()["reasoning"]
    assert (entry["version"], entry["weight"], entry["variants"]) == (1, 100, [])

    # Corrected, it saves, and the marks are gone.
    card.get_by_label("Main weight").fill("3")
    card.get_by_role("button", name="Save").click()
    expect(panel.toast).to_have_text("Saved reasoning: peer / gpt-4o")
    expect(card.locator(".error")).to_be_empty()  # hidden while empty, so no longer an alert
    expect(card.get_by_label("Main weight")).not_to_have_attribute("aria-invalid", "true")
    assert [(v["name"], v["weight"]) for v in panel.config()["reasoning"]["variants"]] == [("canary", 5)]

    assert reports.none(refused=(422,)), f"violations: {reports.violations}; console: {reports.console}"
