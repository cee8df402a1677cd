"""A provider's keys in the panel, in a real Chromium: listed with hints and rest, added, removed, 409 shown."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.api.conftest import API
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.ui.conftest import Panel, on_sqlite

SECOND_KEY = "sk-canary-second-openai-4c1d8e2f"


@on_sqlite
def test_keys_are_listed_with_their_rest_added_and_removed_and_the_last_one_in_use_is_refused(
    panel: Panel, openai_peer: OpenAIPeer
) -> None:
    provider = panel.add_provider("peer", "openai", openai_peer.base_url, OPENAI_PEER_KEY)
    panel.set_config("reasoning", provider_id=provider["id"], model_name="gpt-4o")
    panel.sign_in()
    providers = panel.tab("Providers")
    page = panel.page

    providers.get_by_role("button", name="Edit peer").click()
    form = providers.locator("tr.editing")
    keys = form.get_by_role("region", name="Keys")
    expect(keys.get_by_role("listitem")).to_have_count(1)
    expect(keys.get_by_role("listitem").first).to_contain_text(f"…{OPENAI_PEER_KEY[-4:]}")
    expect(keys.get_by_role("listitem").first).to_contain_text("in turn")

    # Add a second key: it is listed by its hint; the key itself is gone from the page.
    another = form.get_by_label("Another key", exact=True)
    another.fill(SECOND_KEY)
    keys.get_by_role("button", name="Add key").click()
    expect(panel.toast).to_have_text(f"Added key …{SECOND_KEY[-4:]} to peer")
    expect(keys.get_by_role("listitem")).to_have_count(2)
    expect(keys.get_by_role("listitem").nth(1)).to_contain_text(f"…{SECOND_KEY[-4:]}")
    expect(another).to_have_value("")
    assert SECOND_KEY not in page.content()
    form.get_by_role("button", name="Cancel").click()

    # The first key is answered 429: it rests, and the form shows until when.
    openai_peer.accepted_keys.add(SECOND_KEY)
    openai_peer.answer_key(OPENAI_PEER_KEY, 429, retry_after="120")
    assert "Hello" in str(panel.api.service.get_llm("reasoning").invoke("hi").content)
    providers.get_by_role("button", name="Edit peer").click()
    first = keys.get_by_role("listitem").first
    expect(first).to_contain_text("resting until")
    expect(keys.get_by_role("listitem").nth(1)).to_contain_text("in turn")

    # Remove the second key through the confirmation dialog.
    keys.get_by_role("button", name=f"Remove key …{SECOND_KEY[-4:]}").click()
    dialog = page.get_by_role("dialog", name="Remove key?")
    expect(dialog).to_contain_text(f"Remove key …{SECOND_KEY[-4:]} of peer?")
    dialog.get_by_role("button", name="Remove").click()
    expect(dialog).to_be_hidden()
    expect(panel.toast).to_have_text(f"Removed key …{SECOND_KEY[-4:]} of peer")
    expect(keys.get_by_role("listitem")).to_have_count(1)

    # The last key of a provider that reasoning uses: the dialog shows the server's refusal, nothing goes.
    keys.get_by_role("button", name=f"Remove key …{OPENAI_PEER_KEY[-4:]}").click()
    dialog.get_by_role("button", name="Remove").click()
    expect(dialog.get_by_role("alert")).to_contain_text("last API key of provider 'peer'")
    expect(dialog.get_by_role("alert")).to_contain_text("reasoning")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(keys.get_by_role("listitem")).to_have_count(1)

    # The form saves against the provider's version after the key changes (no stale-version refusal).
    form.get_by_label("Enabled", exact=True).select_option("no")
    form.get_by_role("button", name="Save changes").click()
    expect(panel.toast).to_have_text("Saved peer")
    saved = panel.http.get(f"{API}/providers/{provider['id']}").json()
    assert saved["enabled"] is False and saved["api_key_hint"] == OPENAI_PEER_KEY[-4:]
    assert [k["hint"] for k in panel.http.get(f"{API}/providers/{provider['id']}/keys").json()] == [
        OPENAI_PEER_KEY[-4:]
    ]
