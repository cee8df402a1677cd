// The User overrides tab: a user's groups in order (the first with an entry for a type wins), the user's
// effective configuration per interaction type with where each entry comes from (the user's override, a
// group, or the global entry), and Set override / Clear for each type.

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
  const user = encodeURIComponent(userId);
  try {
    const [effective, membership, groups] = await Promise.all([
      api("GET", `/users/${user}/config`),
      api("GET", `/users/${user}/groups`),
      api("GET", "/groups"),
    ]);
    target.replaceChildren(
      membershipEditor(
        userId,
        membership.groups,
        groups.map((g) => g.name),
      ),
      userTable(userId, effective),
    );
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

/** The user's groups as an ordered list with Move up and Remove, a field to add one, and Save groups. */
function membershipEditor(userId, initial, known) {
  const groups = [...initial];
  const list = el("ol", { "aria-label": `Groups of ${userId}, first wins` });
  const render = () => {
    list.replaceChildren(
      ...groups.map((name, i) =>
        el(
          "li",
          {},
          el(
            "div",
            { class: "actions" },
            el("strong", { text: name }),
            el("button", {
              type: "button",
              class: "ghost small",
              text: "Move up",
              disabled: i === 0,
              "aria-label": `Move ${name} up`,
              onclick: () => {
                groups.splice(i - 1, 0, ...groups.splice(i, 1));
                render();
              },
            }),
            el("button", {
              type: "button",
              class: "ghost small",
              text: "Remove",
              "aria-label": `Remove ${name} from the groups`,
              onclick: () => {
                groups.splice(i, 1);
                render();
              },
            }),
          ),
        ),
      ),
    );
    if (!groups.length) list.append(el("li", { class: "muted", text: "No groups: the global entries apply." }));
  };
  render();
  const input = el("input", {
    id: "user-add-group",
    list: "user-known-groups",
    autocomplete: "off",
    placeholder: "group name",
  });
  const add = () => {
    const name = input.value.trim();
    if (name && !groups.includes(name)) groups.push(name);
    input.value = "";
    render();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      add();
    }
  });
  const path = `/users/${encodeURIComponent(userId)}/groups`;
  return el(
    "section",
    { class: "panel members-editor", "aria-labelledby": "user-groups-title" },
    el("h3", { id: "user-groups-title", text: `Groups of ${userId}` }),
    el("p", { class: "muted", text: "In order: for each type the first group with an entry for it wins." }),
    list,
    el(
      "div",
      { class: "actions" },
      el("label", { for: "user-add-group", text: "Add a group" }),
      input,
      el(
        "datalist",
        { id: "user-known-groups" },
        known.map((value) => el("option", { value })),
      ),
      el("button", { type: "button", class: "small", text: "Add group", onclick: add }),
      el("button", {
        type: "button",
        class: "primary small",
        text: "Save groups",
        onclick: (e) =>
          change(
            e.currentTarget,
            "Saving…",
            () => api("PUT", path, { groups }),
            `Groups saved for ${userId}: ${groups.join(", ") || "none"}`,
          ),
      }),
    ),
  );
}

// Where an entry in effect comes from, as the badge shows it: the user's own, a group's, or the global one.
function sourceBadge(source) {
  if (source.startsWith("group:")) return el("span", { class: "badge group", text: `group ${source.slice(6)}` });
  return el("span", { class: `badge ${source === "user" ? "user" : ""}`, text: source });
}

function inEffect(entry) {
  if (!entry) return "not configured";
  const shown = `${entry.provider_name} / ${entry.model_name}`;
  return entry.variants?.length && entry.variant ? `${shown} · variant ${entry.variant}` : shown;
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
    el("td", {}, sourceBadge(source)),
    el("td", { text: inEffect(entry) }),
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
