"""The provider edit form in a real Chromium: a Base URL on another origin does not silently take the stored key."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.api.conftest import API
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, on_sqlite


@on_sqlite
def test_a_base_url_on_another_origin_asks_for_the_key_or_keep_and_a_save_without_either_is_refused(
    panel: Panel, openai_peer: OpenAIPeer
) -> None:
    stored_url = f"http://localhost:{openai_peer.port}/v1"
    provider = panel.add_provider("peer", "custom", stored_url, OPENAI_PEER_KEY)
    panel.sign_in()
    panel.tab("Providers")
    page = panel.page
    panel.provider_row("peer").get_by_role("button", name="Edit peer").click()
    form = page.locator("tr.editing")  # the row the edit form replaced
    base_url = form.get_by_label("Base URL")
    keep = form.get_by_label("Keep the stored key")
    expect(keep).to_be_hidden()

    # Another path on the same origin: nothing to explain.
    base_url.fill(f"http://localhost:{openai_peer.port}/openai/v1")
    expect(keep).to_be_hidden()

    # Another host: the explanation appears next to the field, tied to it for screen readers.
    base_url.fill(openai_peer.base_url)
    note = page.get_by_text("This URL is on another origin than")
    expect(note).to_be_visible()
    expect(note).to_contain_text(f"the stored API key would be sent to http://127.0.0.1:{openai_peer.port}")
    expect(base_url).to_have_attribute("aria-describedby", note.get_attribute("id") or "missing")
    expect(keep).to_be_visible()
    expect(keep).not_to_be_checked()
    expect(form.get_by_label("API key")).to_be_visible()

    # Saved without the key and without Keep: the server refuses and the form says why; nothing changed.
    form.get_by_role("button", name="Save changes").click()
    expect(form.get_by_role("alert")).to_contain_text("moves provider 'peer' to another origin")
    expect(form.get_by_role("alert")).to_contain_text('"keep_api_key": true')
    assert panel.http.get(f"{API}/providers/{provider['id']}").json()["api_base_url"] == stored_url

    # Keep the stored key on purpose: saved, and the audit trail records that choice.
    keep.check()
    form.get_by_role("button", name="Save changes").click()
    expect(panel.toast).to_have_text("Saved peer")
    expect(panel.provider_row("peer")).to_contain_text(openai_peer.base_url)
    saved = panel.http.get(f"{API}/providers/{provider['id']}").json()
    assert saved["api_base_url"] == openai_peer.base_url and saved["has_api_key"] is True
    entry = panel.http.get(f"{API}/audit").json()[0]
    assert entry["action"] == "provider.update.key_kept_across_origin"


@on_sqlite
def test_a_new_key_typed_with_a_new_origin_is_sent_instead_of_keeping_the_old_one(
    panel: Panel, openai_peer: OpenAIPeer
) -> None:
    body = {"name": "peer", "provider_type": "custom", "api_base_url": f"http://localhost:{openai_peer.port}/v1"}
    added = panel.http.post(f"{API}/providers", json={**body, "api_key": "sk-the-old-key-0000"})
    assert added.status_code == 201, added.text
    provider = added.json()
    panel.sign_in()
    panel.tab("Providers")
    panel.provider_row("peer").get_by_role("button", name="Edit peer").click()
    form = panel.page.locator("tr.editing")
    form.get_by_label("Base URL").fill(openai_peer.base_url)
    form.get_by_label("Keep the stored key").check()
    form.get_by_label("API key").fill(OPENAI_PEER_KEY)
    form.get_by_role("button", name="Save changes").click()

    expect(panel.toast).to_have_text("Saved peer")
    expect(panel.provider_row("peer")).to_contain_text(f"…{OPENAI_PEER_KEY[-4:]}")
    assert panel.http.get(f"{API}/audit").json()[0]["action"] == "provider.update"
    result = panel.http.post(f"{API}/providers/{provider['id']}/validate").json()
    assert result["ok"] is True  # the peer accepts only its own key: the new one was stored
