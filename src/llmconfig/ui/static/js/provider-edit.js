// The edit form of one provider, shown in place of its row in the Providers table.

import { api } from "./api.js";
import { $, busy, el, toast } from "./dom.js";

/**
 * Replaces `row` with the edit form of `provider`. After a successful save `done.saved()` runs (it redraws
 * the table); Cancel runs `done.cancelled()`.
 */
export function editProvider(row, provider, done) {
  const id = `edit-${provider.id}`;
  const field = (label, control) =>
    el("div", { class: "field" }, el("label", { for: control.id, text: label }), control);
  const enabled = el(
    "select",
    { id: `${id}-enabled`, name: "enabled" },
    el("option", { value: "true", text: "yes", selected: provider.enabled }),
    el("option", { value: "false", text: "no", selected: !provider.enabled }),
  );
  const form = el(
    "form",
    { class: "form-grid", novalidate: true },
    field("Name", el("input", { id: `${id}-name`, name: "name", value: provider.name, autocomplete: "off" })),
    field(
      "Base URL",
      el("input", { id: `${id}-url`, name: "api_base_url", value: provider.api_base_url || "", autocomplete: "off" }),
    ),
    field(
      "API key",
      el("input", {
        id: `${id}-key`,
        name: "api_key",
        type: "password",
        autocomplete: "new-password",
        placeholder: provider.has_api_key ? "unchanged" : "none",
      }),
    ),
    field("Enabled", enabled),
    el("p", { class: "error wide", role: "alert" }),
    el(
      "div",
      { class: "actions wide" },
      el("button", { type: "submit", class: "primary", text: "Save changes" }),
      el("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => done.cancelled() }),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const change = {
      name: form.elements.name.value.trim(),
      enabled: form.elements.enabled.value === "true",
      version: provider.version,
    };
    const url = form.elements.api_base_url.value.trim();
    if (provider.provider_type === "custom" || url) change.api_base_url = url || null;
    if (form.elements.api_key.value) change.api_key = form.elements.api_key.value;
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
