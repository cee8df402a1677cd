"""The history drawer's Restore and the Usage tab, in a real Chromium."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, on_sqlite


@on_sqlite
def test_history_shows_each_version_and_restore_brings_one_back(panel: Panel, openai_peer: OpenAIPeer) -> None:
    provider = panel.add_provider("local", "custom", openai_peer.root_url, OPENAI_PEER_KEY)
    panel.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o", temperature=0.7)
    panel.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o-mini", temperature=0.2)
    panel.sign_in()

    panel.card("reasoning").get_by_role("button", name="History of reasoning").click()
    drawer = panel.page.get_by_role("dialog", name="History of reasoning")
    expect(drawer).to_be_visible()
    expect(drawer.get_by_text("model_name: gpt-4o → gpt-4o-mini")).to_be_visible()
    expect(drawer.get_by_role("button", name="Version 2 is current")).to_be_disabled()

    drawer.get_by_role("button", name="Restore version 1").click()
    expect(panel.toast).to_contain_text("Restored version 1 of reasoning as version 3")
    expect(drawer).to_be_hidden()
    expect(panel.card("reasoning").get_by_label("Model")).to_have_value("gpt-4o")
    entry = panel.config()["reasoning"]
    assert (entry["model_name"], entry["temperature"], entry["version"]) == ("gpt-4o", 0.7, 3)


@on_sqlite
def test_usage_tab_shows_totals_and_charts_of_real_calls(panel: Panel, openai_peer: OpenAIPeer) -> None:
    provider = panel.add_provider("local", "custom", openai_peer.root_url, OPENAI_PEER_KEY)
    panel.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o")
    service = panel.api.service
    for _ in range(3):
        service.get_llm("reasoning").invoke("four words right here")
    assert service.usage_recorder.flush()
    panel.sign_in()

    usage = panel.tab("Usage")
    totals = panel.page.locator("#usage-totals")
    expect(totals.get_by_text("Calls", exact=True)).to_be_visible()
    expect(totals).to_contain_text("3")
    expect(usage.get_by_role("img", name="Latency per model")).to_be_visible()
    expect(usage.locator("#chart-latency")).to_contain_text("gpt-4o")
    expect(usage.locator("#chart-calls .legend")).to_contain_text("reasoning")
