// The Usage tab: totals of the chosen period and three charts (cost and calls per day by interaction type,
// latency per model).

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
    const [byDayType, byModel] = await busy($("#usage-form button[type=submit]"), "Loading…", () =>
      Promise.all([api("GET", query(["day", "interaction_type"])), api("GET", query(["model"]))]),
    );
    renderUsage(byDayType.groups, byModel.groups, days);
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

/** Wires the tab's form; called once at start. */
export function setUpUsage() {
  $("#usage-form").addEventListener("submit", showUsage);
}
