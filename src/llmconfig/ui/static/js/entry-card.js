// The editor of one entry as a card: provider, model, parameters, fallback chain and weighted variants, saved
// with the version it was loaded at (a conflicting save is explained, never applied). The Model Configuration
// tab shows one per interaction type for the global entries, the Groups tab one per type for a group's.

import { api } from "./api.js";
import { $, busy, el, toast, when } from "./dom.js";
import { showHistory } from "./history.js";
import { providerAndModel, providerOptions } from "./pickers.js";
import { state } from "./state.js";
import { markRejected, readVariants, setUpVariants } from "./variants.js";

// A select of the provider's models of the right kind; a free text field while nothing was discovered.
function modelControl(card, kind, providerId, selected) {
  const field = $(".model-field", card);
  const id = $("label", field).htmlFor;
  const models = (state.catalogs.get(providerId) || []).filter((m) => m.kind === kind);
  let control;
  if (models.length) {
    control = el("select", { id, name: "model_name" });
    if (!models.some((m) => m.model_name === selected)) {
      control.append(el("option", { value: "", text: "Choose a model" }));
    }
    for (const model of models) {
      const text = model.display_name ? `${model.display_name} (${model.model_name})` : model.model_name;
      control.append(el("option", { value: model.model_name, text, selected: model.model_name === selected }));
    }
  } else {
    // Nothing discovered (yet): any model name is accepted.
    control = el("input", {
      id,
      name: "model_name",
      value: selected || "",
      placeholder: "model name",
      autocomplete: "off",
    });
  }
  field.querySelector("select, input")?.remove();
  field.append(control);
}

function fallbackRow(list, fallback = {}) {
  const n = list.children.length + 1;
  const [provider, model] = providerAndModel(`Fallback ${n}`, "fallback", fallback);
  const row = el("li", {}, provider, model);
  row.append(
    el("button", {
      type: "button",
      class: "ghost small",
      "aria-label": `Remove fallback ${n}`,
      text: "Remove",
      onclick: () => row.remove(),
    }),
  );
  list.append(row);
  return row;
}

/**
 * The card of `type` showing `entry` (undefined when there is none). `where` says which entry it edits:
 * `path` (its REST path), `slug` (unique prefix of the ids), `label` (how toasts and the history name it),
 * `title` (the card's heading, the type's name by default), `removable` (a Remove button while the entry
 * exists), and `onChange(entry)` called after a save, restore (with the new entry) or removal (with null).
 */
export function buildEntryCard(type, entry, where) {
  const { path, slug, label } = where;
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const form = $("form", card);
  card.dataset.type = type.name;
  card.setAttribute("aria-labelledby", `${slug}-title`);
  $(".card-title", card).textContent = where.title || type.name;
  $(".card-title", card).id = `${slug}-title`;
  $(".kind", card).textContent = type.kind;
  $(".description", card).textContent = type.description || "";

  const [providerLabel, modelLabel, tempLabel, maxLabel] = form.querySelectorAll(".field > label");
  const providerSelect = $("select[name=provider_id]", form);
  providerSelect.id = `${slug}-provider`;
  providerLabel.htmlFor = providerSelect.id;
  modelLabel.htmlFor = `${slug}-model`;
  const temperature = $("input[name=temperature]", form);
  const slider = $("input[name=temperature_range]", form);
  temperature.id = `${slug}-temperature`;
  tempLabel.htmlFor = temperature.id;
  // The number field is the accessible control; the slider mirrors it for pointer users.
  slider.setAttribute("aria-hidden", "true");
  slider.tabIndex = -1;
  const maxTokens = $("input[name=max_tokens]", form);
  maxTokens.id = `${slug}-max-tokens`;
  maxLabel.htmlFor = maxTokens.id;

  providerOptions(providerSelect, entry?.provider_id);
  modelControl(card, type.kind, entry?.provider_id, entry?.model_name);
  providerSelect.addEventListener("change", () => modelControl(card, type.kind, providerSelect.value, ""));

  const initialTemp = entry?.temperature ?? "";
  temperature.value = initialTemp;
  slider.value = initialTemp === "" ? 1 : initialTemp;
  slider.addEventListener("input", () => {
    temperature.value = slider.value;
  });
  temperature.addEventListener("input", () => {
    if (temperature.value !== "") slider.value = temperature.value;
  });
  maxTokens.value = entry?.max_tokens ?? "";
  if (type.kind === "embeddings") {
    $(".temp", form).hidden = true;
    maxTokens.closest(".field").hidden = true;
  }

  const fallbacks = $(".fallbacks ol", form);
  for (const fallback of entry?.fallbacks || []) fallbackRow(fallbacks, fallback);
  $("[data-add-fallback]", form).addEventListener("click", () => $("select", fallbackRow(fallbacks)).focus());
  setUpVariants(form, slug, entry);

  card.dataset.version = entry ? entry.version : "0";
  showMeta(card, entry);
  const rebuild = (next) => {
    where.onChange?.(next);
    card.replaceWith(buildEntryCard(type, next || undefined, where));
  };
  form.addEventListener("submit", (event) => saveCard(event, card, type, where));
  const history = $("[data-history]", form);
  history.setAttribute("aria-label", `History of ${label}`);
  history.addEventListener("click", () => showHistory(history, { path, label }, rebuild));
  const remove = $("[data-remove]", form);
  remove.hidden = !(where.removable && entry);
  remove.setAttribute("aria-label", `Remove ${label}`);
  remove.addEventListener("click", async () => {
    try {
      await busy(remove, "Removing…", () => api("DELETE", path));
      toast(`Removed ${label}`);
      rebuild(null);
    } catch (e) {
      $(".error", form).textContent = e.message;
    }
  });
  return card;
}

function showMeta(card, entry) {
  $(".meta", card).textContent = entry
    ? `Version ${entry.version} · changed ${when(entry.updated_at)}${entry.updated_by ? ` by ${entry.updated_by}` : ""}`
    : "Not configured yet";
}

function readSettings(form) {
  const body = {
    provider_id: form.elements.provider_id.value,
    model_name: form.elements.model_name.value.trim(),
  };
  const temperature = form.elements.temperature.value;
  const maxTokens = form.elements.max_tokens.value;
  if (!form.querySelector(".temp").hidden) body.temperature = temperature === "" ? null : Number(temperature);
  body.max_tokens = maxTokens === "" ? null : Number(maxTokens);
  body.fallbacks = [...form.querySelectorAll(".fallbacks li")]
    .map((li) => ({ provider_id: $("select", li).value, model_name: $("input", li).value.trim() }))
    .filter((f) => f.provider_id && f.model_name);
  return body;
}

async function saveCard(event, card, type, where) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".error", form);
  error.replaceChildren();
  const body = readSettings(form);
  if (!body.provider_id || !body.model_name) {
    error.textContent = "Choose a provider and a model first.";
    return;
  }
  const { weight, variants, rows } = readVariants(form);
  markRejected(form, rows, []);
  Object.assign(body, { weight, variants, version: Number(card.dataset.version) });
  try {
    const entry = await busy($("button[type=submit]", form), "Saving…", () => api("PUT", where.path, body));
    where.onChange?.(entry);
    card.dataset.version = entry.version;
    showMeta(card, entry);
    $("[data-remove]", form).hidden = !where.removable;
    toast(`Saved ${where.label}: ${entry.provider_name} / ${entry.model_name}`);
  } catch (e) {
    if (e.status === 409) {
      const reload = el("button", {
        type: "button",
        class: "small",
        text: "Reload",
        onclick: () => reloadCard(card, type, where),
      });
      error.append(`Someone else changed ${where.label} meanwhile, so your change was not saved. `, reload);
    } else {
      // The server's message names the field, and for a variant the variant: shown as it is.
      error.textContent = e.message;
      markRejected(form, rows, e.fields || []);
    }
  }
}

async function reloadCard(card, type, where) {
  try {
    const entries = await api("GET", where.path.slice(0, where.path.lastIndexOf("/")));
    const entry = entries[type.name];
    where.onChange?.(entry || null);
    const fresh = buildEntryCard(type, entry, where);
    card.replaceWith(fresh);
    $("select", fresh).focus();
    toast(`Reloaded ${where.label}`);
  } catch (e) {
    toast(e.message, "bad");
  }
}
