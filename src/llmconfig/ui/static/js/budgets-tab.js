// The Budgets tab: each budget's scope and period with its spend against its limits (a <meter>, coloured by
// the browser, sized by classes: the Content Security Policy allows no inline styles), exceeded ones marked;
// one form adds or edits a budget, and Delete removes one.

import { api } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, actionsCell, busy, el, smallButton, toast, when } from "./dom.js";
import { providerOptions } from "./pickers.js";
import { state } from "./state.js";

let editing = null; // the budget the form edits, or null while it adds one

// When a period starts again (the server counts hours, days and calendar months in UTC).
const RESETS = { hour: "resets every hour", day: "resets at midnight UTC", month: "resets on the 1st, UTC" };
const usd = (value) => `$${value.toFixed(value < 1 ? 4 : 2)}`;
const tokens = (value) => value.toLocaleString("en-US");

function spendLine(scope, what, spent, limit, format) {
  const percent = Math.round((spent / limit) * 100);
  return el(
    "div",
    { class: "spend" },
    el("meter", {
      min: "0",
      max: String(limit),
      value: String(Math.min(spent, limit)),
      low: String(limit * 0.8),
      high: String(limit * 0.95),
      optimum: "0",
      "aria-label": `${scope}: ${what} spent`,
    }),
    el("span", { text: `${format(spent)} of ${format(limit)} ${what === "tokens" ? "tokens " : ""}(${percent}%)` }),
  );
}

// A provider's budget is stored under the provider's id; people know it by its name.
function shownScope(scope) {
  const [kind, ...rest] = scope.split(":");
  return kind === "provider" ? `provider:${providerName(rest.join(":"))}` : scope;
}

function budgetRow(budget) {
  const scope = shownScope(budget.scope);
  const spend = [];
  if (budget.limit_usd !== null) spend.push(spendLine(scope, "USD", budget.spent_usd, budget.limit_usd, usd));
  if (budget.limit_tokens !== null) {
    spend.push(spendLine(scope, "tokens", budget.spent_tokens, budget.limit_tokens, tokens));
  }
  const exceed = budget.on_exceed;
  return el(
    "tr",
    { class: budget.exceeded ? "exceeded" : null },
    el("th", { scope: "row" }, scope, budget.exceeded ? el("span", { class: "badge failed", text: "exceeded" }) : null),
    el(
      "td",
      { title: `This period began ${when(budget.period_start)}` },
      budget.period,
      el("small", { class: "muted status-detail", text: RESETS[budget.period] }),
    ),
    el("td", {}, spend),
    el("td", { text: exceed ? `${providerName(exceed.provider_id)} / ${exceed.model_name}` : "calls fail" }),
    actionsCell(
      smallButton("Edit", `Edit budget ${scope}`, () => openForm(budget)),
      smallButton("Delete", `Delete budget ${scope}`, () => deleteBudget(budget), "danger"),
    ),
  );
}

const providerName = (id) => state.providers.find((p) => p.id === id || p.name === id)?.name || id;

/** Lists the budgets with their current spend; called when the tab is shown and after each change. */
export async function showBudgets() {
  try {
    const budgets = await api("GET", "/budgets");
    $("#budgets-empty").hidden = budgets.length > 0;
    $("#budgets-table").hidden = budgets.length === 0;
    $("#budgets-table tbody").replaceChildren(...budgets.map(budgetRow));
  } catch (e) {
    toast(e.message, "bad");
  }
}

// The names the chosen scope kind offers (users are free text: the server knows no list of them).
async function suggestNames() {
  const kind = $("#b-kind").value;
  let names = [];
  if (kind === "type") names = state.types.map((t) => t.name);
  if (kind === "provider") names = state.providers.map((p) => p.name);
  if (kind === "group")
    names = await api("GET", "/groups").then(
      (groups) => groups.map((g) => g.name),
      () => [],
    );
  $("#b-names").replaceChildren(...names.map((value) => el("option", { value })));
}

function openForm(budget = null) {
  editing = budget;
  const form = $("#budget-form");
  const [kind, ...rest] = budget ? shownScope(budget.scope).split(":") : ["type"];
  $("#budget-form-title").textContent = budget ? `Edit budget ${shownScope(budget.scope)}` : "Add budget";
  form.elements.kind.value = kind;
  form.elements.name.value = rest.join(":");
  form.elements.kind.disabled = Boolean(budget);
  form.elements.name.disabled = Boolean(budget);
  form.elements.period.value = budget?.period || "day";
  form.elements.limit_usd.value = budget?.limit_usd ?? "";
  form.elements.limit_tokens.value = budget?.limit_tokens ?? "";
  const provider = form.elements.on_exceed_provider;
  providerOptions(provider, budget?.on_exceed?.provider_id);
  provider.options[0].textContent = "none: calls fail";
  form.elements.on_exceed_model.value = budget?.on_exceed?.model_name || "";
  $(".error", form).textContent = "";
  form.hidden = false;
  $("#budget-toggle").setAttribute("aria-expanded", "true");
  suggestNames();
  (budget ? form.elements.period : form.elements.kind).focus();
}

function closeForm() {
  $("#budget-form").hidden = true;
  $("#budget-toggle").setAttribute("aria-expanded", "false");
  editing = null;
}

// A number as typed; text that is not one is sent as it is, so that the server's 422 explains it.
const typed = (value) => (value.trim() === "" ? undefined : Number.isNaN(Number(value)) ? value : Number(value));

async function saveBudget(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".error", form);
  error.textContent = "";
  const name = form.elements.name.value.trim();
  if (!name) {
    error.textContent = "Enter the name of the scope (an interaction type, user id, group or provider).";
    return;
  }
  const scope = editing ? editing.scope : `${form.elements.kind.value}:${name}`;
  const body = {
    period: form.elements.period.value,
    limit_usd: typed(form.elements.limit_usd.value),
    limit_tokens: typed(form.elements.limit_tokens.value),
    version: editing ? editing.version : 0,
  };
  const provider = form.elements.on_exceed_provider.value;
  const model = form.elements.on_exceed_model.value.trim();
  if (provider || model) body.on_exceed = { provider_id: provider, model_name: model };
  try {
    const path = `/budgets/${encodeURIComponent(scope)}`;
    await busy($("button[type=submit]", form), "Saving…", () => api("PUT", path, body));
    toast(`Saved the budget of ${shownScope(scope)}`);
    closeForm();
    await showBudgets();
  } catch (e) {
    error.textContent = e.message;
  }
}

async function deleteBudget(budget) {
  const deleted = await confirmAction({
    title: "Delete budget?",
    text: `Delete the budget of ${shownScope(budget.scope)}? Its calls are no longer limited.`,
    confirm: "Delete",
    busyLabel: "Deleting…",
    action: () => api("DELETE", `/budgets/${encodeURIComponent(budget.scope)}`),
  });
  if (!deleted) return;
  toast(`Deleted the budget of ${shownScope(budget.scope)}`);
  if (editing?.scope === budget.scope) closeForm();
  await showBudgets();
}

/** Wires the tab's toggle and form; called once at start. */
export function setUpBudgets() {
  $("#budget-toggle").addEventListener("click", () => openForm());
  $("#budget-form [data-cancel]").addEventListener("click", closeForm);
  $("#budget-form").addEventListener("submit", saveBudget);
  $("#b-kind").addEventListener("change", suggestNames);
}
