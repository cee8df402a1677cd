// The User overrides tab: a user's effective configuration per interaction type, where each entry comes
// from, and Set override / Clear for each type.

import { api } from "./api.js";
import { $, busy, el, toast } from "./dom.js";
import { providerOptions } from "./pickers.js";
import { state } from "./state.js";

export async function showUser(event) {
  event?.preventDefault();
  const userId = $("#user-id").value.trim();
  const target = $("#user-config");
  if (!userId) {
    target.replaceChildren(el("p", { class: "error", role: "alert", text: "Enter a user id." }));
    return;
  }
  target.setAttribute("aria-busy", "true");
  try {
    const effective = await api("GET", `/users/${encodeURIComponent(userId)}/config`);
    target.replaceChildren(userTable(userId, effective));
  } catch (e) {
    target.replaceChildren(el("p", { class: "error", role: "alert", text: e.message }));
  } finally {
    target.removeAttribute("aria-busy");
  }
}

// Runs one change of an override with a loading state, then shows the user's configuration again.
async function change(button, label, request, done) {
  try {
    await busy(button, label, request);
    toast(done);
    await showUser();
  } catch (err) {
    toast(err.message, "bad");
  }
}

function overrideRow(userId, type, entry) {
  const source = entry ? entry.source : "none";
  const mine = source === "user";
  const id = `ovr-${type.name}`;
  const path = `/users/${encodeURIComponent(userId)}/config/${encodeURIComponent(type.name)}`;
  const provider = el("select", { id: `${id}-provider`, "aria-label": `${type.name} override provider` });
  providerOptions(provider, mine ? entry.provider_id : "");
  const model = el("input", {
    id: `${id}-model`,
    "aria-label": `${type.name} override model`,
    value: mine ? entry.model_name : "",
    placeholder: "model",
    autocomplete: "off",
  });
  const set = el("button", {
    type: "button",
    class: "small",
    text: "Set override",
    onclick: (e) =>
      change(
        e.currentTarget,
        "Saving…",
        () => api("PUT", path, { provider_id: provider.value, model_name: model.value.trim() }),
        `Override saved for ${userId}: ${type.name}`,
      ),
  });
  const clear = el("button", {
    type: "button",
    class: "small ghost",
    text: "Clear",
    disabled: !mine,
    "aria-label": `Clear ${type.name} override`,
    onclick: (e) =>
      change(e.currentTarget, "Clearing…", () => api("DELETE", path), `Override cleared for ${userId}: ${type.name}`),
  });
  return el(
    "tr",
    { "data-type": type.name },
    el("th", { scope: "row", text: type.name }),
    el("td", {}, el("span", { class: `badge ${mine ? "user" : ""}`, text: source })),
    el("td", { text: entry ? `${entry.provider_name} / ${entry.model_name}` : "not configured" }),
    el("td", {}, el("div", { class: "actions" }, provider, model, set, clear)),
  );
}

function userTable(userId, effective) {
  const headings = ["Interaction type", "Source", "In effect", "Override"].map((h) =>
    el("th", { scope: "col", text: h }),
  );
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      el("caption", { class: "sr-only", text: `Effective configuration of ${userId}` }),
      el("thead", {}, el("tr", {}, headings)),
      el(
        "tbody",
        {},
        state.types.map((type) => overrideRow(userId, type, effective[type.name])),
      ),
    ),
  );
}

/** Wires the tab's form; called once at start. */
export function setUpUsers() {
  $("#user-form").addEventListener("submit", showUser);
}
