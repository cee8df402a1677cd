// The Usage tab: totals of the chosen period, three charts (cost and calls per day by interaction type,
// latency per model) and the variants of each interaction type compared side by side.

import { api } from "./api.js";
import { latencyBars, stackedBars } from "./charts.js";
import { $, busy, el, toast } from "./dom.js";

const DAY_MS = 86400000;

export async function showUsage(event) {
  event?.preventDefault();
  const days = Number($("#usage-days").value);
  const since = new Date(Date.now() - days * DAY_MS).toISOString();
  const query = (dims) => `/usage?${dims.map((d) => `group_by=${d}`).join("&")}&since=${encodeURIComponent(since)}`;
  try {
    const [byDayType, byModel, byVariant] = await busy($("#usage-form button[type=submit]"), "Loading…", () =>
      Promise.all([
        api("GET", query(["day", "interaction_type"])),
        api("GET", query(["model"])),
        api("GET", query(["interaction_type", "variant"])),
      ]),
    );
    renderUsage(byDayType.groups, byModel.groups, days);
    renderComparison(byVariant.groups);
  } catch (e) {
    toast(e.message, "bad");
  }
}

function renderUsage(dayType, models, days) {
  const sum = (metric) => dayType.reduce((n, g) => n + metric(g), 0);
  const calls = sum((g) => g.calls);
  const totals = [
    ["Calls", calls],
    ["Errors", sum((g) => g.errors)],
    ["Tokens", sum((g) => g.prompt_tokens + g.completion_tokens)],
    ["Estimated cost", `$${sum((g) => g.cost_usd).toFixed(4)}`],
  ];
  $("#usage-totals").replaceChildren(
    ...totals.map(([label, value]) =>
      el("div", {}, el("span", { class: "muted", text: label }), el("strong", { text: String(value) })),
    ),
  );
  const charts = ["#chart-cost", "#chart-calls", "#chart-latency"].map((selector) => $(selector));
  if (!calls) {
    const empty = "No calls recorded in this period. Calls made through llmconfig.get_llm() show up here.";
    for (const chart of charts) chart.replaceChildren(el("p", { class: "muted", text: empty }));
    return;
  }
  const dates = [];
  for (let i = days - 1; i >= 0; i -= 1) dates.push(new Date(Date.now() - i * DAY_MS).toISOString().slice(0, 10));
  const types = [...new Set(dayType.map((g) => g.keys[1]))].sort();
  const value = (metric) => (date, type) =>
    dayType.filter((g) => g.keys[0] === date && g.keys[1] === type).reduce((n, g) => n + g[metric], 0);
  const [cost, perDay, latency] = charts;
  cost.replaceChildren(stackedBars(dates, types, value("cost_usd"), (v) => `$${v.toFixed(4)}`));
  perDay.replaceChildren(stackedBars(dates, types, value("calls"), (v) => String(v)));
  latency.replaceChildren(latencyBars(models));
}

const NO_VARIANT = "(none)";
const COMPARED = [
  ["Calls", (g) => String(g.calls)],
  ["Errors", (g) => (g.errors ? `${g.errors} (${Math.round((g.errors / g.calls) * 100)}%)` : "0")],
  ["Latency p50 (ms)", (g) => String(Math.round(g.latency_p50_ms))],
  ["Latency p95 (ms)", (g) => String(Math.round(g.latency_p95_ms))],
  ["Tokens per call", (g) => g.tokens_per_call.toFixed(1)],
  ["Cost per call (USD)", (g) => `$${g.cost_per_call_usd.toFixed(6)}`],
];

/** One row per interaction type and variant, its figures per call so that variants of any weight compare. */
function renderComparison(groups) {
  const target = $("#variant-comparison");
  // Calls of entries without variants carry none (the report's "(none)"): there is nothing to compare them with.
  const compared = groups.filter((g) => g.keys[1] !== NO_VARIANT);
  if (!compared.length) {
    const text = "No calls of entries with variants in this period. Add variants on a Model Configuration card.";
    target.replaceChildren(el("p", { class: "muted", text }));
    return;
  }
  const sorted = [...compared].sort((a, b) => a.keys[0].localeCompare(b.keys[0]) || b.calls - a.calls);
  const headings = ["Interaction type", "Variant", ...COMPARED.map(([h]) => h)];
  target.replaceChildren(
    el(
      "table",
      { class: "numbers" },
      el("caption", { class: "sr-only", text: "Variants compared" }),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          headings.map((h) => el("th", { scope: "col", text: h })),
        ),
      ),
      el(
        "tbody",
        {},
        sorted.map((g) =>
          el(
            "tr",
            { "data-variant": g.keys[1] },
            el("td", { text: g.keys[0] }),
            el("th", { scope: "row", text: g.keys[1] }),
            COMPARED.map(([, value]) => el("td", { text: value(g) })),
          ),
        ),
      ),
    ),
  );
}

/** Wires the tab's form; called once at start. */
export function setUpUsage() {
  $("#usage-form").addEventListener("submit", showUsage);
}
