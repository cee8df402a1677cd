// The llmconfig settings panel. Plain browser JavaScript talking to the REST API with the signed-in token.
"use strict";

const API = "/api/v1/llm";
const TOKEN_KEY = "llmconfig.token"; // sessionStorage: gone when the browser session ends

const state = { providers: [], types: [], config: {}, catalogs: new Map() };

// ---------------------------------------------------------------------------------------------- helpers

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, "Cannot reach the llmconfig server; check that it is running.");
  }
  if (response.status === 401 && path !== "/interaction-types") {
    signOut("Your session ended (the token was rejected); sign in again.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || `HTTP ${response.status}`);
  return data;
}

// Runs an action with a loading state on its button, and shows the API's detail when it fails.
async function busy(button, label, action) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = original;
  }
}

let toastTimer;
function toast(message, kind = "ok") {
  const box = $("#toast");
  box.replaceChildren(el("div", { class: kind, text: message }));
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.replaceChildren(), 6000);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function providerName(id) {
  const provider = state.providers.find((p) => p.id === id);
  return provider ? provider.name : id;
}

// ---------------------------------------------------------------------------------------------- sign-in

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const token = $("#token").value.trim();
  const error = $("#signin-error");
  error.textContent = "";
  if (!token) {
    error.textContent = "Enter a token.";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await busy($("button[type=submit]", form), "Signing in…", () => api("GET", "/interaction-types"));
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    error.textContent = e.status === 401 ? "That token was not accepted. Check it and try again." : e.message;
    return;
  }
  $("#token").value = "";
  await showApp();
  $('[role="tab"][aria-selected="true"]').focus(); // the sign-in form is gone: keep keyboard users in place
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message || "";
  $("#token").focus();
}

async function showApp() {
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  await loadAll();
  const wanted = location.hash.slice(1);
  selectTab(TABS.includes(wanted) ? wanted : "config", false);
}

// ---------------------------------------------------------------------------------------------- tabs

const TABS = ["config", "providers", "users", "usage"];

function selectTab(name, focus = true) {
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    const selected = tab === name;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  history.replaceState(null, "", name === "config" ? "#" : `#${name}`);
  if (name === "usage") showUsage();
}

function tabKeys(event) {
  const index = TABS.indexOf(event.target.id.replace("tab-", ""));
  if (index < 0) return;
  const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: TABS.length - 1 - index };
  if (!(event.key in moves)) return;
  event.preventDefault();
  selectTab(TABS[(index + moves[event.key] + TABS.length) % TABS.length]);
}

// ---------------------------------------------------------------------------------------------- data

async function loadAll() {
  $("#cards").setAttribute("aria-busy", "true");
  try {
    const [providers, types, config] = await Promise.all([
      api("GET", "/providers"),
      api("GET", "/interaction-types"),
      api("GET", "/config"),
    ]);
    state.providers = providers;
    state.types = types;
    state.config = config;
    state.catalogs.clear();
    await Promise.all(providers.map(loadCatalog));
  } catch (e) {
    toast(e.message, "bad");
    return;
  } finally {
    $("#cards").removeAttribute("aria-busy");
  }
  renderProviders();
  renderCards();
}

async function loadCatalog(provider) {
  try {
    state.catalogs.set(provider.id, await api("GET", `/providers/${provider.id}/models`));
  } catch {
    state.catalogs.set(provider.id, []);
  }
}

// ---------------------------------------------------------------------------------------------- model configuration

function renderCards() {
  const cards = $("#cards");
  cards.replaceChildren();
  $("#config-empty").hidden = state.providers.length > 0;
  for (const type of state.types) cards.append(buildCard(type, state.config[type.name]));
}

function modelControl(card, kind, providerId, selected) {
  const field = $(".model-field", card);
  const label = $("label", field);
  const id = label.htmlFor;
  const models = (state.catalogs.get(providerId) || []).filter((m) => m.kind === kind);
  let control;
  if (models.length) {
    control = el("select", { id, name: "model_name" });
    if (!models.some((m) => m.model_name === selected)) control.append(el("option", { value: "", text: "Choose a model" }));
    for (const model of models) {
      control.append(el("option", { value: model.model_name, text: model.display_name ? `${model.display_name} (${model.model_name})` : model.model_name, selected: model.model_name === selected }));
    }
  } else {
    // Nothing discovered (yet): any model name is accepted.
    control = el("input", { id, name: "model_name", value: selected || "", placeholder: "model name", autocomplete: "off" });
  }
  field.querySelector("select, input")?.remove();
  field.append(control);
}

function providerOptions(select, selectedId) {
  select.replaceChildren(el("option", { value: "", text: state.providers.length ? "Choose a provider" : "No providers yet" }));
  for (const provider of state.providers) {
    select.append(el("option", { value: provider.id, text: `${provider.name} (${provider.provider_type})`, selected: provider.id === selectedId }));
  }
}

function fallbackRow(list, kind, fallback = {}) {
  const n = list.children.length + 1;
  const provider = el("select", { "aria-label": `Fallback ${n} provider`, name: "fallback_provider" });
  providerOptions(provider, fallback.provider_id);
  const model = el("input", { "aria-label": `Fallback ${n} model`, name: "fallback_model", value: fallback.model_name || "", placeholder: "model", autocomplete: "off" });
  const remove = el("button", { type: "button", class: "ghost small", "aria-label": `Remove fallback ${n}`, text: "Remove", onclick: () => row.remove() });
  const row = el("li", {}, provider, model, remove);
  list.append(row);
  return row;
}

function buildCard(type, entry) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const form = $("form", card);
  const slug = `cfg-${type.name}`;
  card.dataset.type = type.name;
  card.setAttribute("aria-labelledby", `${slug}-title`);
  $(".card-title", card).textContent = type.name;
  $(".card-title", card).id = `${slug}-title`;
  $(".kind", card).textContent = type.kind;
  $(".description", card).textContent = type.description || "";

  const labels = form.querySelectorAll(".field > label");
  const [providerLabel, modelLabel, tempLabel, maxLabel] = labels;
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
  slider.addEventListener("input", () => { temperature.value = slider.value; });
  temperature.addEventListener("input", () => { if (temperature.value !== "") slider.value = temperature.value; });
  if (type.kind === "embeddings") $(".temp", form).hidden = true;
  maxTokens.value = entry?.max_tokens ?? "";
  if (type.kind === "embeddings") maxTokens.closest(".field").hidden = true;

  const fallbacks = $(".fallbacks ol", form);
  for (const fallback of entry?.fallbacks || []) fallbackRow(fallbacks, type.kind, fallback);
  $("[data-add-fallback]", form).addEventListener("click", () => $("select", fallbackRow(fallbacks, type.kind)).focus());

  card.dataset.version = entry ? entry.version : "0";
  showMeta(card, entry);
  form.addEventListener("submit", (event) => saveCard(event, card, type));
  $("[data-history]", form).setAttribute("aria-label", `History of ${type.name}`);
  $("[data-history]", form).addEventListener("click", (event) => showHistory(event.currentTarget, type));
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

async function saveCard(event, card, type) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".error", form);
  error.replaceChildren();
  const body = readSettings(form);
  if (!body.provider_id || !body.model_name) {
    error.textContent = "Choose a provider and a model first.";
    return;
  }
  body.version = Number(card.dataset.version);
  try {
    const entry = await busy($("button[type=submit]", form), "Saving…", () => api("PUT", `/config/${encodeURIComponent(type.name)}`, body));
    state.config[type.name] = entry;
    card.dataset.version = entry.version;
    showMeta(card, entry);
    toast(`Saved ${type.name}: ${entry.provider_name} / ${entry.model_name}`);
  } catch (e) {
    if (e.status === 409) {
      const reload = el("button", { type: "button", class: "small", text: "Reload", onclick: () => reloadCard(card, type) });
      error.append(`Someone else changed ${type.name} meanwhile, so your change was not saved. `, reload);
    } else {
      error.textContent = e.message;
    }
  }
}

async function reloadCard(card, type) {
  try {
    const config = await api("GET", "/config");
    state.config = config;
    card.replaceWith(buildCard(type, config[type.name]));
    $(`[data-type="${CSS.escape(type.name)}"] select`).focus();
    toast(`Reloaded ${type.name}`);
  } catch (e) {
    toast(e.message, "bad");
  }
}

// ---------------------------------------------------------------------------------------------- history

const HISTORY_FIELDS = ["provider_name", "model_name", "temperature", "max_tokens", "extra_params", "fallbacks"];

function fieldText(value) {
  if (value === null || value === undefined) return "default";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

async function showHistory(button, type) {
  const dialog = $("#history");
  $("#history-title").textContent = `History of ${type.name}`;
  $(".error", dialog).textContent = "";
  let versions;
  try {
    versions = await busy(button, "Loading…", () => api("GET", `/config/${encodeURIComponent(type.name)}/history`));
  } catch (e) {
    toast(e.message, "bad");
    return;
  }
  const list = $("#history-list");
  list.replaceChildren();
  if (!versions.length) list.append(el("li", { class: "muted", text: `${type.name} has not been configured yet.` }));
  versions.forEach((version, index) => {
    const previous = versions[index + 1];
    const changes = HISTORY_FIELDS.filter((f) => !previous || fieldText(previous.entry[f]) !== fieldText(version.entry[f]));
    const diff = el("ul", { class: "diff" }, changes.map((f) => el("li", {},
      `${f}: `,
      previous ? el("del", { text: fieldText(previous.entry[f]) }) : "",
      previous ? " → " : "",
      el("ins", { text: fieldText(version.entry[f]) }))));
    const current = index === 0;
    const restore = el("button", { type: "button", class: "small", text: current ? "Current" : "Restore", disabled: current,
      "aria-label": current ? `Version ${version.version} is current` : `Restore version ${version.version}`,
      onclick: async (e) => {
        try {
          const entry = await busy(e.currentTarget, "Restoring…", () => api("POST", `/config/${encodeURIComponent(type.name)}/rollback`, { version: version.version }));
          state.config[type.name] = entry;
          dialog.close();
          const card = $(`article[data-type="${CSS.escape(type.name)}"]`);
          card.replaceWith(buildCard(type, entry));
          toast(`Restored version ${version.version} of ${type.name} as version ${entry.version}`);
        } catch (err) {
          $(".error", dialog).textContent = err.message;
        }
      } });
    list.append(el("li", {},
      el("div", { class: "actions" }, el("strong", { text: `Version ${version.version}` }), el("span", { class: "muted", text: `${version.action.split(".")[1]} by ${version.actor}, ${when(version.at)}` }), restore),
      diff));
  });
  dialog.showModal();
}

// ---------------------------------------------------------------------------------------------- usage

const PALETTE = ["#2f5bea", "#e0803a", "#1f9d6b", "#b64cc8", "#d23f57", "#6b7c93", "#c9a227"];

async function showUsage(event) {
  event?.preventDefault();
  const days = Number($("#usage-days").value);
  const since = new Date(Date.now() - days * 86400000).toISOString();
  const query = (dims) => `/usage?${dims.map((d) => `group_by=${d}`).join("&")}&since=${encodeURIComponent(since)}`;
  try {
    const [byDayType, byModel] = await busy($("#usage-form button[type=submit]"), "Loading…", () => Promise.all([
      api("GET", query(["day", "interaction_type"])),
      api("GET", query(["model"])),
    ]));
    renderUsage(byDayType.groups, byModel.groups, days);
  } catch (e) {
    toast(e.message, "bad");
  }
}

function renderUsage(dayType, models, days) {
  const calls = dayType.reduce((n, g) => n + g.calls, 0);
  const errors = dayType.reduce((n, g) => n + g.errors, 0);
  const cost = dayType.reduce((n, g) => n + g.cost_usd, 0);
  const tokens = dayType.reduce((n, g) => n + g.prompt_tokens + g.completion_tokens, 0);
  $("#usage-totals").replaceChildren(
    ...[["Calls", calls], ["Errors", errors], ["Tokens", tokens], ["Estimated cost", `$${cost.toFixed(4)}`]]
      .map(([label, value]) => el("div", {}, el("span", { class: "muted", text: label }), el("strong", { text: String(value) }))));
  if (!calls) {
    const empty = el("p", { class: "muted", text: "No calls recorded in this period. Calls made through llmconfig.get_llm() show up here." });
    $("#chart-cost").replaceChildren(empty);
    $("#chart-calls").replaceChildren(empty.cloneNode(true));
    $("#chart-latency").replaceChildren(empty.cloneNode(true));
    return;
  }
  const dates = [];
  for (let i = days - 1; i >= 0; i -= 1) dates.push(new Date(Date.now() - i * 86400000).toISOString().slice(0, 10));
  const types = [...new Set(dayType.map((g) => g.keys[1]))].sort();
  const value = (metric) => (date, type) => dayType.filter((g) => g.keys[0] === date && g.keys[1] === type).reduce((n, g) => n + g[metric], 0);
  $("#chart-cost").replaceChildren(stackedBars(dates, types, value("cost_usd"), (v) => `$${v.toFixed(4)}`));
  $("#chart-calls").replaceChildren(stackedBars(dates, types, value("calls"), (v) => String(v)));
  $("#chart-latency").replaceChildren(latencyBars(models));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function stackedBars(dates, series, value, format) {
  const width = 520, height = 220, left = 56, bottom = 28, top = 10;
  const totals = dates.map((d) => series.reduce((n, s) => n + value(d, s), 0));
  const max = Math.max(...totals) || 1;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Total ${format(totals.reduce((a, b) => a + b, 0))} over ${dates.length} days` });
  const band = (width - left - 8) / dates.length;
  chart.append(svg("text", { x: 4, y: top + 8 }, format(max)), svg("text", { x: 4, y: height - bottom }, format(0)));
  chart.append(svg("line", { x1: left, x2: width - 8, y1: height - bottom, y2: height - bottom, stroke: "#c7cdd6" }));
  dates.forEach((date, i) => {
    let y = height - bottom;
    series.forEach((s, j) => {
      const v = value(date, s);
      if (!v) return;
      const h = (v / max) * (height - bottom - top);
      y -= h;
      const rect = svg("rect", { x: left + i * band + band * 0.15, y, width: band * 0.7, height: h, fill: PALETTE[j % PALETTE.length], rx: 2 });
      rect.append(svg("title", {}, `${date} · ${s}: ${format(v)}`));
      chart.append(rect);
    });
    if (dates.length <= 10 || i % Math.ceil(dates.length / 10) === 0) {
      chart.append(svg("text", { x: left + i * band + band / 2, y: height - 10, "text-anchor": "middle" }, date.slice(5)));
    }
  });
  const legend = el("div", { class: "legend" }, series.map((s, j) => el("span", { style: `--swatch: ${PALETTE[j % PALETTE.length]}`, text: s })));
  return el("div", {}, chart, legend);
}

function latencyBars(models) {
  const width = 1040, row = 26, left = 200, top = 6;
  const height = top + models.length * row + 24;
  const max = Math.max(...models.map((m) => m.latency_p95_ms)) || 1;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Latency per model" });
  models.forEach((m, i) => {
    const y = top + i * row;
    const scale = (v) => (v / max) * (width - left - 210);
    chart.append(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end" }, m.key));
    chart.append(svg("rect", { x: left, y: y + 4, width: scale(m.latency_p95_ms), height: 14, fill: "#c9d6fb", rx: 2 }));
    chart.append(svg("rect", { x: left, y: y + 4, width: scale(m.latency_p50_ms), height: 14, fill: "#2f5bea", rx: 2 }));
    chart.append(svg("text", { x: left + scale(m.latency_p95_ms) + 6, y: y + 15 }, `p50 ${m.latency_p50_ms} · p95 ${m.latency_p95_ms}`));
  });
  const legend = el("div", { class: "legend" }, el("span", { style: "--swatch: #2f5bea", text: "p50" }), el("span", { style: "--swatch: #c9d6fb", text: "p95" }));
  return el("div", {}, chart, legend);
}

// ---------------------------------------------------------------------------------------------- providers

function statusCell(provider, result) {
  const badge = el("span", { class: `badge ${provider.validation_status}`, text: provider.validation_status === "never" ? "not checked" : provider.validation_status });
  const cell = el("td", { class: "status" }, badge);
  if (result) {
    cell.append(el("span", { class: "status-detail", text: result.ok ? `${result.detail} · ${result.latency_ms} ms` : `${result.status}: ${result.detail}` }));
  } else if (provider.validation_error) {
    cell.append(el("span", { class: "status-detail", text: provider.validation_error }));
  }
  if (provider.validated_at) cell.append(el("span", { class: "status-detail", text: `checked ${when(provider.validated_at)}` }));
  return cell;
}

function renderProviders(results = {}) {
  const body = $("#providers-table tbody");
  body.replaceChildren();
  $("#providers-table").hidden = state.providers.length === 0;
  $("#providers-empty").hidden = state.providers.length > 0;
  for (const provider of state.providers) {
    const row = el("tr", { "data-provider": provider.name },
      el("th", { scope: "row", text: provider.name }),
      el("td", { text: provider.provider_type }),
      el("td", { class: "url", text: provider.api_base_url || "" }),
      el("td", { text: provider.has_api_key ? (provider.api_key_hint ? `…${provider.api_key_hint}` : "set") : "none" }),
      statusCell(provider, results[provider.id]),
      el("td", {}, el("div", { class: "actions" },
        el("button", { type: "button", class: "small", text: "Validate", "aria-label": `Validate ${provider.name}`, onclick: (e) => validateProvider(e.currentTarget, provider) }),
        el("button", { type: "button", class: "small", text: "Refresh models", "aria-label": `Refresh models of ${provider.name}`, onclick: (e) => refreshModels(e.currentTarget, provider) }),
        el("button", { type: "button", class: "small", text: "Edit", "aria-label": `Edit ${provider.name}`, onclick: () => editProvider(row, provider) }),
        el("button", { type: "button", class: "small", text: "Delete", "aria-label": `Delete ${provider.name}`, onclick: () => deleteProvider(provider) }),
      )),
    );
    body.append(row);
  }
}

async function refreshProviders(results) {
  state.providers = await api("GET", "/providers");
  renderProviders(results);
  renderCards();
}

async function validateProvider(button, provider) {
  try {
    const result = await busy(button, "Validating…", () => api("POST", `/providers/${provider.id}/validate`));
    await loadCatalog(provider);
    await refreshProviders({ [provider.id]: result });
    toast(result.ok ? `${provider.name}: ${result.detail} (${result.latency_ms} ms)` : `${provider.name}: ${result.status}: ${result.detail}`, result.ok ? "ok" : "bad");
    $(`tr[data-provider="${CSS.escape(provider.name)}"] button`).focus();
  } catch (e) {
    toast(e.message, "bad");
  }
}

async function refreshModels(button, provider) {
  try {
    const models = await busy(button, "Refreshing…", () => api("GET", `/providers/${provider.id}/models?refresh=true`));
    state.catalogs.set(provider.id, models);
    await refreshProviders();
    toast(`${provider.name}: ${models.length} models`);
  } catch (e) {
    toast(e.message, "bad");
  }
}

function editProvider(row, provider) {
  const id = `edit-${provider.id}`;
  const form = el("form", { class: "form-grid", novalidate: true },
    el("div", { class: "field" }, el("label", { for: `${id}-name`, text: "Name" }), el("input", { id: `${id}-name`, name: "name", value: provider.name, autocomplete: "off" })),
    el("div", { class: "field" }, el("label", { for: `${id}-url`, text: "Base URL" }), el("input", { id: `${id}-url`, name: "api_base_url", value: provider.api_base_url || "", autocomplete: "off" })),
    el("div", { class: "field" }, el("label", { for: `${id}-key`, text: "API key" }), el("input", { id: `${id}-key`, name: "api_key", type: "password", autocomplete: "new-password", placeholder: provider.has_api_key ? "unchanged" : "none" })),
    el("div", { class: "field" }, el("label", { for: `${id}-enabled`, text: "Enabled" }),
      el("select", { id: `${id}-enabled`, name: "enabled" }, el("option", { value: "true", text: "yes", selected: provider.enabled }), el("option", { value: "false", text: "no", selected: !provider.enabled }))),
    el("p", { class: "error wide", role: "alert" }),
    el("div", { class: "actions wide" },
      el("button", { type: "submit", class: "primary", text: "Save changes" }),
      el("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => renderProviders() })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const change = { name: form.elements.name.value.trim(), enabled: form.elements.enabled.value === "true", version: provider.version };
    if (provider.provider_type === "custom" || form.elements.api_base_url.value.trim()) change.api_base_url = form.elements.api_base_url.value.trim() || null;
    if (form.elements.api_key.value) change.api_key = form.elements.api_key.value;
    try {
      await busy($("button[type=submit]", form), "Saving…", () => api("PATCH", `/providers/${provider.id}`, change));
      await refreshProviders();
      toast(`Saved ${change.name}`);
    } catch (e) {
      $(".error", form).textContent = e.status === 409 && /version|someone else/.test(e.message) ? `${e.message}` : e.message;
    }
  });
  const cell = el("td", { colspan: "6" }, form);
  row.replaceChildren(cell);
  row.classList.add("editing");
  form.elements.name.focus();
}

function deleteProvider(provider) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = `Delete provider ${provider.name}? Its stored key and model catalog are removed.`;
  $(".error", dialog).textContent = "";
  const ok = $("#confirm-ok");
  const onClick = async (event) => {
    event.preventDefault();
    try {
      await busy(ok, "Deleting…", () => api("DELETE", `/providers/${provider.id}`));
      dialog.close();
      await refreshProviders();
      toast(`Deleted ${provider.name}`);
    } catch (e) {
      $(".error", dialog).textContent = e.message;
    }
  };
  ok.addEventListener("click", onClick);
  dialog.addEventListener("close", () => ok.removeEventListener("click", onClick), { once: true });
  dialog.showModal();
}

async function addProvider(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".error", form);
  error.textContent = "";
  const body = {
    name: form.elements.name.value.trim(),
    provider_type: form.elements.provider_type.value,
  };
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
    await validateProvider($(`tr[data-provider="${CSS.escape(provider.name)}"] button`) || el("button"), provider);
  } catch (e) {
    error.textContent = e.message;
  } finally {
    form.elements.api_key.value = ""; // never keep a typed key around in the page
  }
}

function toggleAddForm(open) {
  const form = $("#add-provider");
  form.hidden = !open;
  const toggle = $("#add-provider-toggle");
  toggle.setAttribute("aria-expanded", String(open));
  toggle.textContent = open ? "Close" : "Add provider";
  if (open) form.elements.name.focus();
}

// ---------------------------------------------------------------------------------------------- user overrides

async function showUser(event) {
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

function userTable(userId, effective) {
  const rows = state.types.map((type) => {
    const entry = effective[type.name];
    const source = entry ? entry.source : "none";
    const id = `ovr-${type.name}`;
    const provider = el("select", { id: `${id}-provider`, "aria-label": `${type.name} override provider` });
    providerOptions(provider, source === "user" ? entry.provider_id : "");
    const model = el("input", { id: `${id}-model`, "aria-label": `${type.name} override model`, value: source === "user" ? entry.model_name : "", placeholder: "model", autocomplete: "off" });
    const set = el("button", { type: "button", class: "small", text: "Set override", onclick: async (e) => {
      try {
        await busy(e.currentTarget, "Saving…", () => api("PUT", `/users/${encodeURIComponent(userId)}/config/${encodeURIComponent(type.name)}`, { provider_id: provider.value, model_name: model.value.trim() }));
        toast(`Override saved for ${userId}: ${type.name}`);
        await showUser();
      } catch (err) { toast(err.message, "bad"); }
    } });
    const clear = el("button", { type: "button", class: "small ghost", text: "Clear", disabled: source !== "user", "aria-label": `Clear ${type.name} override`, onclick: async (e) => {
      try {
        await busy(e.currentTarget, "Clearing…", () => api("DELETE", `/users/${encodeURIComponent(userId)}/config/${encodeURIComponent(type.name)}`));
        toast(`Override cleared for ${userId}: ${type.name}`);
        await showUser();
      } catch (err) { toast(err.message, "bad"); }
    } });
    return el("tr", { "data-type": type.name },
      el("th", { scope: "row", text: type.name }),
      el("td", {}, el("span", { class: `badge ${source === "user" ? "user" : ""}`, text: source })),
      el("td", { text: entry ? `${entry.provider_name} / ${entry.model_name}` : "not configured" }),
      el("td", {}, el("div", { class: "actions" }, provider, model, set, clear)),
    );
  });
  return el("div", { class: "table-wrap" }, el("table", {},
    el("caption", { class: "sr-only", text: `Effective configuration of ${userId}` }),
    el("thead", {}, el("tr", {}, ...["Interaction type", "Source", "In effect", "Override"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows)));
}

// ---------------------------------------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut("Signed out."));
  for (const tab of TABS) $(`#tab-${tab}`).addEventListener("click", () => selectTab(tab));
  $(".tabs").addEventListener("keydown", tabKeys);
  $("#add-provider-toggle").addEventListener("click", () => toggleAddForm($("#add-provider").hidden));
  $("#add-provider").addEventListener("submit", addProvider);
  $("#add-provider [data-cancel]").addEventListener("click", () => toggleAddForm(false));
  $("#user-form").addEventListener("submit", showUser);
  $("#usage-form").addEventListener("submit", showUsage);
  $("#history [data-close]").addEventListener("click", () => $("#history").close());
  document.querySelectorAll("[data-goto]").forEach((link) => link.addEventListener("click", (e) => { e.preventDefault(); selectTab(link.dataset.goto); }));
  if (sessionStorage.getItem(TOKEN_KEY)) showApp();
  else signOut();
});
