// The keys of one provider, inside its edit form: each key by its hint with its state (in turn, or resting
// after a 429 or 401 until a given time), Add key, and Remove with the one confirmation dialog (which shows
// the API's refusal, such as the last key of a provider in use).

import { api } from "./api.js";
import { confirmAction } from "./confirm.js";
import { busy, el, toast, when } from "./dom.js";

const label = (key) => (key.hint ? `…${key.hint}` : "key without a hint");

/**
 * The Keys section of `provider`'s edit form. After every change `changed()` runs with the provider as the
 * API now shows it (its version moves with its keys, so the form must save against the new one).
 */
export function keysSection(provider, changed) {
  const id = `keys-${provider.id}`;
  const list = el("ul", { class: "keys", id: `${id}-list`, "aria-live": "polite" });
  const error = el("p", { class: "error", role: "alert" });
  const input = el("input", {
    id: `${id}-new`,
    name: "new_key",
    type: "password",
    autocomplete: "new-password",
    placeholder: "sk-…",
  });
  const add = el("button", { type: "button", class: "small", text: "Add key" });

  const afterChange = async () => {
    Object.assign(provider, await api("GET", `/providers/${provider.id}`));
    await changed(provider);
    await load();
  };

  const remove = async (key) => {
    const removed = await confirmAction({
      title: "Remove key?",
      text: `Remove key ${label(key)} of ${provider.name}? Calls stop using it at once.`,
      confirm: "Remove",
      busyLabel: "Removing…",
      action: () => api("DELETE", `/providers/${provider.id}/keys/${key.key_id}`),
    });
    if (!removed) return;
    toast(`Removed key ${label(key)} of ${provider.name}`);
    await afterChange();
  };

  async function load() {
    error.textContent = "";
    let keys;
    try {
      keys = await api("GET", `/providers/${provider.id}/keys`);
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    list.replaceChildren(
      ...keys.map((key, index) =>
        el(
          "li",
          { "data-key": key.key_id },
          el("span", { class: "key-hint", text: label(key) }),
          el("span", {
            class: `badge ${key.resting_until ? "failed" : "ok"}`,
            text: key.resting_until ? `resting until ${when(key.resting_until)}` : "in turn",
          }),
          index === 0 ? el("span", { class: "status-detail", text: "first key" }) : null,
          el("button", {
            type: "button",
            class: "small",
            text: "Remove",
            "aria-label": `Remove key ${label(key)}`,
            onclick: () => remove(key),
          }),
        ),
      ),
    );
    if (keys.length === 0) list.append(el("li", { class: "status-detail", text: "No keys." }));
  }

  // Enter adds the key: the edit form around the section must not be submitted by it.
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    add.click();
  });

  add.addEventListener("click", async () => {
    error.textContent = "";
    if (!input.value.trim()) {
      error.textContent = "Paste the key to add first.";
      input.focus();
      return;
    }
    try {
      const created = await busy(add, "Adding…", () =>
        api("POST", `/providers/${provider.id}/keys`, { api_key: input.value }),
      );
      toast(`Added key ${label(created)} to ${provider.name}`);
      await afterChange();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      input.value = ""; // never keep a typed key around in the page
    }
  });

  const section = el(
    "section",
    { class: "wide keys-section", "aria-labelledby": `${id}-title` },
    el("h3", { id: `${id}-title`, text: "Keys" }),
    el("p", {
      class: "status-detail",
      text: "Calls take the keys in turn; a key answered 429 or 401 rests for a while.",
    }),
    list,
    el("div", { class: "field" }, el("label", { for: input.id, text: "Another key" }), input),
    el("div", { class: "actions" }, add),
    error,
  );
  load();
  return section;
}
