// The edit form of one provider, shown in place of its row in the Providers table.

import { api } from "./api.js";
import { $, busy, el, toast } from "./dom.js";
import { keysSection } from "./provider-keys.js";

/** `scheme://host[:port]` of an http(s) URL as the browser normalises it, or null for anything else. */
export function originOf(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.origin : null;
  } catch {
    return null;
  }
}

/**
 * Replaces `row` with the edit form of `provider`. After a successful save `done.saved()` runs (it redraws
 * the table); Cancel runs `done.cancelled()`.
 */
export function editProvider(row, provider, done) {
  const id = `edit-${provider.id}`;
  const field = (label, control, ...more) =>
    el("div", { class: "field" }, el("label", { for: control.id, text: label }), control, ...more);
  const enabled = el(
    "select",
    { id: `${id}-enabled`, name: "enabled" },
    el("option", { value: "true", text: "yes", selected: provider.enabled }),
    el("option", { value: "false", text: "no", selected: !provider.enabled }),
  );
  // Shown when the Base URL leaves the stored origin of a provider with a key (the server refuses that save
  // unless the key is sent again or kept on purpose, so that a key never follows a URL by accident).
  const originNote = el("small", { id: `${id}-origin-note`, class: "origin-note", hidden: true });
  const keep = el("input", { id: `${id}-keep`, name: "keep_api_key", type: "checkbox" });
  const keepField = el(
    "div",
    { class: "check", hidden: true },
    keep,
    el("label", { for: keep.id, text: "Keep the stored key" }),
  );
  const url = el("input", {
    id: `${id}-url`,
    name: "api_base_url",
    value: provider.api_base_url || "",
    autocomplete: "off",
    "aria-describedby": originNote.id,
  });
  const key = el("input", {
    id: `${id}-key`,
    name: "api_key",
    type: "password",
    autocomplete: "new-password",
    placeholder: provider.has_api_key ? "unchanged" : "none",
    "aria-describedby": `${originNote.id} ${id}-key-note`,
  });
  // A key typed here becomes the provider's only key; Keys below adds one beside the others.
  const keyNote = el("small", {
    id: `${id}-key-note`,
    class: "status-detail",
    text: "Replaces every key of this provider; add one beside them under Keys.",
  });
  const stored = originOf(provider.api_base_url || "");
  const movesTheKey = () => {
    const wanted = originOf(url.value.trim());
    return provider.has_api_key && stored !== null && wanted !== null && wanted !== stored ? wanted : null;
  };
  url.addEventListener("input", () => {
    const wanted = movesTheKey();
    originNote.hidden = keepField.hidden = wanted === null;
    if (wanted === null) keep.checked = false;
    originNote.textContent = wanted
      ? `This URL is on another origin than ${stored}, so the stored API key would be sent to ${wanted}. ` +
        "Enter the key again, or tick Keep the stored key to send it there on purpose."
      : "";
  });
  const form = el(
    "form",
    { class: "form-grid", novalidate: true },
    field("Name", el("input", { id: `${id}-name`, name: "name", value: provider.name, autocomplete: "off" })),
    field("Base URL", url, originNote),
    field("API key", key, keyNote, keepField),
    field("Enabled", enabled),
    el("p", { class: "error wide", role: "alert" }),
    el(
      "div",
      { class: "actions wide" },
      el("button", { type: "submit", class: "primary", text: "Save changes" }),
      el("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => done.cancelled() }),
    ),
    // Key changes save at once: the form then saves against the provider's new version.
    keysSection(provider, (fresh) => {
      provider.version = fresh.version;
      key.placeholder = fresh.has_api_key ? "unchanged" : "none";
    }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const change = {
      name: form.elements.name.value.trim(),
      enabled: form.elements.enabled.value === "true",
      version: provider.version,
    };
    const typed = url.value.trim();
    if (provider.provider_type === "custom" || typed) change.api_base_url = typed || null;
    if (key.value) change.api_key = key.value;
    else if (keep.checked && movesTheKey()) change.keep_api_key = true;
    try {
      await busy($("button[type=submit]", form), "Saving…", () => api("PATCH", `/providers/${provider.id}`, change));
      await done.saved();
      toast(`Saved ${change.name}`);
    } catch (e) {
      $(".error", form).textContent = e.message;
    }
  });
  row.replaceChildren(el("td", { colspan: "6" }, form));
  row.classList.add("editing");
  form.elements.name.focus();
}
