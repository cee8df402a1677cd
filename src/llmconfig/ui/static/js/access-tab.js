// The Access tab: the API's tokens with their role, type limit and use, Create token (the new token is shown
// once, in a dialog, and dropped from the page when the dialog closes) and Revoke. Tokens are admin business:
// a viewer is told that, rather than shown an empty list.

import { api, token as session } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, busy, el, toast, toggleForm } from "./dom.js";

const ROLE_NOTES = {
  admin: "Everything: changes, tokens, calls to providers.",
  viewer: "Reads the configuration, providers, audit and usage; never a key.",
  client:
    "For agents: resolves interaction types (and so receives their provider keys), the OpenAI-compatible " +
    "endpoints, usage events and the change stream.",
};

let types = [];

// Minutes are enough here, and the short form keeps the table's date columns on one or two lines.
const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
let loads = 0; // a tab opened twice in a row draws only the answer to the later request

/** Loads the tokens and the interaction types and draws the tab; called whenever the tab is opened. */
export async function showAccess() {
  const run = ++loads;
  const loading = $("#tokens-loading");
  loading.hidden = false;
  $("#tokens-table").setAttribute("aria-busy", "true");
  try {
    const [tokens, found] = await Promise.all([api("GET", "/tokens"), api("GET", "/interaction-types")]);
    if (run !== loads) return;
    types = found;
    renderTypeChoices();
    renderTokens(tokens);
    showNote(null);
  } catch (e) {
    if (run !== loads) return;
    $("#tokens-table").hidden = true;
    toggleCreateForm(false);
    if (e.status === 403) {
      showNote(
        "An admin token is needed",
        `${e.message}. Sign in with an admin token to list, create and revoke tokens.`,
      );
    } else {
      showNote("The tokens could not be loaded", e.message);
    }
  } finally {
    if (run === loads) {
      loading.hidden = true;
      $("#tokens-table").removeAttribute("aria-busy");
    }
  }
}

// The note replaces the list (and the Create token button) when there is nothing to show.
function showNote(title, text) {
  const note = $("#access-note");
  note.hidden = title === null;
  $("#create-token-toggle").hidden = title !== null;
  $("h2", note).textContent = title || "";
  $("p", note).textContent = text || "";
}

function typesText(info) {
  return info.interaction_types ? info.interaction_types.join(", ") : "all";
}

function statusCell(info) {
  if (!info.revoked_at) return el("td", {}, el("span", { class: "badge ok", text: "active" }));
  return el(
    "td",
    {},
    el("span", { class: "badge failed", text: "revoked" }),
    el("span", { class: "status-detail", text: when(info.revoked_at) }),
  );
}

function tokenRow(info) {
  // The signed-in token is recognised by its stored prefix (the first 12 characters of the token).
  const mine = (session.get() || "").startsWith(info.token_prefix);
  const label = `${info.name} (starts with ${info.token_prefix})`;
  const actions = info.revoked_at
    ? el("td", {})
    : el(
        "td",
        {},
        el("button", {
          type: "button",
          class: "small",
          text: "Revoke",
          "aria-label": `Revoke ${label}`,
          onclick: () => revokeToken(info, mine),
        }),
      );
  return el(
    "tr",
    { "data-token": info.id, class: info.revoked_at ? "revoked" : null },
    el("th", { scope: "row" }, info.name, mine ? el("span", { class: "badge user", text: "this session" }) : null),
    el("td", { "data-label": "Role" }, el("span", { class: "badge", text: info.role })),
    el("td", { "data-label": "Types", text: typesText(info) }),
    el("td", { "data-label": "Starts with" }, el("code", { text: `${info.token_prefix}…` })),
    el(
      "td",
      { "data-label": "Created" },
      when(info.created_at),
      info.created_by ? el("span", { class: "status-detail", text: `by ${info.created_by}` }) : null,
    ),
    el("td", { "data-label": "Last used", text: info.last_used_at ? when(info.last_used_at) : "never" }),
    statusCell(info),
    actions,
  );
}

function renderTokens(tokens) {
  const table = $("#tokens-table");
  $("tbody", table).replaceChildren(...tokens.map(tokenRow));
  table.hidden = false;
}

// One checkbox per interaction type; what was ticked stays ticked when the list is drawn again.
function renderTypeChoices() {
  const box = $("#t-types .checks");
  const ticked = new Set([...box.querySelectorAll("input:checked")].map((input) => input.value));
  box.replaceChildren(
    ...types.map((type) => {
      const id = `t-type-${type.name}`;
      return el(
        "div",
        { class: "check" },
        el("input", {
          id,
          type: "checkbox",
          name: "interaction_types",
          value: type.name,
          checked: ticked.has(type.name),
        }),
        el("label", { for: id, text: type.name }),
      );
    }),
  );
}

function showRoleNote() {
  const role = $("#t-role").value;
  $("#t-role-note").textContent = ROLE_NOTES[role];
  // Only client tokens may be limited to interaction types (the API refuses a limit on the others).
  $("#t-types").hidden = role !== "client";
}

function markInvalid(form, fields) {
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  for (const name of fields) {
    const control = name === "interaction_types" ? $("#t-types") : form.elements[name];
    if (control && !(control instanceof RadioNodeList)) control.setAttribute("aria-invalid", "true");
  }
}

async function createToken(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".error", form);
  error.textContent = "";
  markInvalid(form, []);
  const body = { name: form.elements.name.value.trim(), role: form.elements.role.value };
  if (body.role === "client") {
    const ticked = [...form.querySelectorAll("input[name=interaction_types]:checked")].map((input) => input.value);
    if (ticked.length) body.interaction_types = ticked;
  }
  if (!body.name) {
    error.textContent = "Give the token a name, so that you can tell it apart later.";
    markInvalid(form, ["name"]);
    form.elements.name.focus();
    return;
  }
  let created;
  try {
    created = await busy($("button[type=submit]", form), "Creating…", () => api("POST", "/tokens", body));
  } catch (e) {
    error.textContent = e.message;
    markInvalid(form, e.fields);
    form.querySelector("[aria-invalid] input, input[aria-invalid], select[aria-invalid]")?.focus();
    return;
  }
  form.reset();
  showRoleNote();
  toggleCreateForm(false);
  showNewToken(created.token, created.info);
  toast(`Created ${created.info.role} token ${created.info.name}`);
  showAccess();
}

// The only place a token's plaintext is ever put on the page; closing the dialog (Done, Escape) removes it.
function showNewToken(value, info) {
  const dialog = $("#new-token");
  const field = $("#new-token-value");
  $("#new-token-title").textContent = `Token created: ${info.name}`;
  $("#copy-outcome").textContent = "";
  field.value = value;
  dialog.showModal();
  field.focus();
  field.select();
}

function forgetNewToken() {
  $("#new-token-value").value = "";
  $("#copy-outcome").textContent = "";
  $("#create-token-toggle").focus();
}

async function copyNewToken(event) {
  const field = $("#new-token-value");
  const outcome = $("#copy-outcome");
  try {
    // Absent outside secure contexts (plain http on another host than localhost): then the catch explains.
    await busy(event.currentTarget, "Copying…", () => navigator.clipboard.writeText(field.value));
    outcome.textContent = "Copied to the clipboard.";
  } catch {
    field.focus();
    field.select();
    outcome.textContent = "This browser did not allow copying; the token is selected, copy it with Ctrl+C (⌘C).";
  }
}

async function revokeToken(info, mine) {
  const consequence = mine
    ? "It is the token you are signed in with: you will be signed out."
    : "Requests with it are refused from now on.";
  const revoked = await confirmAction({
    title: "Revoke token?",
    text: `Revoke ${info.role} token ${info.name} (${info.token_prefix}…)? ${consequence} This cannot be undone.`,
    confirm: "Revoke",
    busyLabel: "Revoking…",
    action: () => api("DELETE", `/tokens/${encodeURIComponent(info.id)}`),
  });
  if (!revoked) return;
  toast(`Revoked ${info.name}`);
  await showAccess();
  $("#create-token-toggle").focus();
}

function toggleCreateForm(open) {
  toggleForm("create-token", "Create token", open);
}

/** Drops everything the tab showed (the list is admin business); called when the session ends. */
export function forgetAccess() {
  loads++;
  const dialog = $("#new-token");
  if (dialog.open) dialog.close();
  $("#new-token-value").value = "";
  $("#tokens-table tbody").replaceChildren();
  $("#tokens-table").hidden = true;
  $("#create-token").reset();
  $(".error", $("#create-token")).textContent = "";
  toggleCreateForm(false);
  showRoleNote();
}

/** Wires the tab's static controls; called once at start. */
export function setUpAccess() {
  $("#create-token-toggle").addEventListener("click", () => toggleCreateForm($("#create-token").hidden));
  $("#create-token").addEventListener("submit", createToken);
  $("#create-token [data-cancel]").addEventListener("click", () => {
    toggleCreateForm(false);
    $("#create-token-toggle").focus();
  });
  $("#t-role").addEventListener("change", showRoleNote);
  $("#copy-token").addEventListener("click", copyNewToken);
  $("#new-token").addEventListener("close", forgetNewToken);
  showRoleNote();
}
