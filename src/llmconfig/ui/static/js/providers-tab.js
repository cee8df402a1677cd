// The Providers tab: the table of providers with their status, Add provider, Validate, Refresh models,
// Edit (see provider-edit.js) and Delete.

import { api } from "./api.js";
import { renderCards } from "./config-tab.js";
import { confirmAction } from "./confirm.js";
import { $, actionsCell, busy, el, smallButton, toast, toggleForm, when } from "./dom.js";
import { editProvider } from "./provider-edit.js";
import { loadCatalog, reloadProviders, state } from "./state.js";

function statusCell(provider, result) {
  const text = provider.validation_status === "never" ? "not checked" : provider.validation_status;
  const cell = el("td", { class: "status" }, el("span", { class: `badge ${provider.validation_status}`, text }));
  const detail = (message) => cell.append(el("span", { class: "status-detail", text: message }));
  if (result) detail(result.ok ? `${result.detail} · ${result.latency_ms} ms` : `${result.status}: ${result.detail}`);
  else if (provider.validation_error) detail(provider.validation_error);
  if (provider.validated_at) detail(`checked ${when(provider.validated_at)}`);
  return cell;
}

function keyText(provider) {
  if (!provider.has_api_key) return "none";
  return provider.api_key_hint ? `…${provider.api_key_hint}` : "set";
}

/** Redraws the table; `results` maps provider ids to the outcome of a validation just made. */
export function renderProviders(results = {}) {
  const body = $("#providers-table tbody");
  body.replaceChildren();
  $("#providers-table").hidden = state.providers.length === 0;
  $("#providers-empty").hidden = state.providers.length > 0;
  for (const provider of state.providers) {
    const action = (text, label, onclick) => smallButton(text, `${label} ${provider.name}`, onclick);
    const row = el(
      "tr",
      { "data-provider": provider.name },
      el("th", { scope: "row", text: provider.name }),
      el("td", { text: provider.provider_type }),
      el("td", { class: "url", text: provider.api_base_url || "" }),
      el("td", { text: keyText(provider) }),
      statusCell(provider, results[provider.id]),
      actionsCell(
        action("Validate", "Validate", (e) => validateProvider(e.currentTarget, provider)),
        action("Refresh models", "Refresh models of", (e) => refreshModels(e.currentTarget, provider)),
        action("Edit", "Edit", () =>
          editProvider(row, provider, { saved: refreshProviders, cancelled: renderProviders }),
        ),
        action("Delete", "Delete", () => deleteProvider(provider)),
      ),
    );
    body.append(row);
  }
}

/** Reloads the providers and redraws everything that shows them: this table and the cards' pickers. */
export async function refreshProviders(results) {
  await reloadProviders();
  renderProviders(results);
  renderCards();
}

function rowButton(provider) {
  return $(`tr[data-provider="${CSS.escape(provider.name)}"] button`);
}

async function validateProvider(button, provider) {
  try {
    const result = await busy(button, "Validating…", () => api("POST", `/providers/${provider.id}/validate`));
    await loadCatalog(provider);
    await refreshProviders({ [provider.id]: result });
    const outcome = result.ok ? `${result.detail} (${result.latency_ms} ms)` : `${result.status}: ${result.detail}`;
    toast(`${provider.name}: ${outcome}`, result.ok ? "ok" : "bad");
    rowButton(provider).focus();
  } catch (e) {
    toast(e.message, "bad");
  }
}

async function refreshModels(button, provider) {
  try {
    const path = `/providers/${provider.id}/models?refresh=true`;
    const models = await busy(button, "Refreshing…", () => api("GET", path));
    state.catalogs.set(provider.id, models);
    await refreshProviders();
    toast(`${provider.name}: ${models.length} models`);
  } catch (e) {
    toast(e.message, "bad");
  }
}

async function deleteProvider(provider) {
  const deleted = await confirmAction({
    title: "Delete provider?",
    text: `Delete provider ${provider.name}? Its stored key and model catalog are removed.`,
    confirm: "Delete",
    busyLabel: "Deleting…",
    action: () => api("DELETE", `/providers/${provider.id}`),
  });
  if (!deleted) return;
  toast(`Deleted ${provider.name}`);
  try {
    await refreshProviders();
  } catch (e) {
    toast(e.message, "bad");
  }
}

async function addProvider(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".error", form);
  error.textContent = "";
  const body = { name: form.elements.name.value.trim(), provider_type: form.elements.provider_type.value };
  if (form.elements.api_base_url.value.trim()) body.api_base_url = form.elements.api_base_url.value.trim();
  if (form.elements.api_key.value) body.api_key = form.elements.api_key.value;
  if (!body.name) {
    error.textContent = "Give the provider a name.";
    form.elements.name.focus();
    return;
  }
  try {
    const provider = await busy($("button[type=submit]", form), "Adding…", () => api("POST", "/providers", body));
    form.reset();
    toggleAddForm(false);
    state.providers.push(provider);
    renderProviders();
    toast(`Added ${provider.name}; validating…`);
    await validateProvider(rowButton(provider) || el("button"), provider);
  } catch (e) {
    error.textContent = e.message;
  } finally {
    form.elements.api_key.value = ""; // never keep a typed key around in the page
  }
}

function toggleAddForm(open) {
  toggleForm("add-provider", "Add provider", open);
}

/** Wires the tab's static controls; called once at start. */
export function setUpProviders() {
  $("#add-provider-toggle").addEventListener("click", () => toggleAddForm($("#add-provider").hidden));
  $("#add-provider").addEventListener("submit", addProvider);
  $("#add-provider [data-cancel]").addEventListener("click", () => toggleAddForm(false));
}
