// The usage charts, drawn as SVG. Colours come from classes in css/usage.css (series-0 … series-6, latency-p50,
// latency-p95), never from inline styles, which the Content Security Policy blocks.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const SERIES_COLOURS = 7; // series-0 … series-6 in css/usage.css

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const seriesClass = (index) => `series-${index % SERIES_COLOURS}`;

function legend(items) {
  return el(
    "div",
    { class: "legend" },
    items.map(([text, colour]) => el("span", { class: `swatch ${colour}`, text })),
  );
}

/** Bars per date, stacked by series; `value(date, series)` gives each part, `format` labels values. */
export function stackedBars(dates, series, value, format) {
  const width = 520;
  const height = 220;
  const left = 56;
  const bottom = 28;
  const top = 10;
  const totals = dates.map((d) => series.reduce((n, s) => n + value(d, s), 0));
  const max = Math.max(...totals) || 1;
  const total = format(totals.reduce((a, b) => a + b, 0));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Total ${total} over ${dates.length} days`,
  });
  const band = (width - left - 8) / dates.length;
  chart.append(svg("text", { x: 4, y: top + 8 }, format(max)), svg("text", { x: 4, y: height - bottom }, format(0)));
  chart.append(svg("line", { x1: left, x2: width - 8, y1: height - bottom, y2: height - bottom, class: "axis" }));
  dates.forEach((date, i) => {
    let y = height - bottom;
    series.forEach((s, j) => {
      const v = value(date, s);
      if (!v) return;
      const h = (v / max) * (height - bottom - top);
      y -= h;
      const x = left + i * band + band * 0.15;
      const rect = svg("rect", { x, y, width: band * 0.7, height: h, class: seriesClass(j), rx: 2 });
      rect.append(svg("title", {}, `${date} · ${s}: ${format(v)}`));
      chart.append(rect);
    });
    if (dates.length <= 10 || i % Math.ceil(dates.length / 10) === 0) {
      chart.append(
        svg("text", { x: left + i * band + band / 2, y: height - 10, "text-anchor": "middle" }, date.slice(5)),
      );
    }
  });
  return el("div", {}, chart, legend(series.map((s, j) => [s, seriesClass(j)])));
}

/** One row per model: the p95 latency as a light bar with the p50 over it. */
export function latencyBars(models) {
  const width = 1040;
  const row = 26;
  const left = 200;
  const top = 6;
  const height = top + models.length * row + 24;
  const max = Math.max(...models.map((m) => m.latency_p95_ms)) || 1;
  const scale = (v) => (v / max) * (width - left - 210);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Latency per model" });
  models.forEach((m, i) => {
    const y = top + i * row;
    chart.append(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end" }, m.key));
    for (const [ms, colour] of [
      [m.latency_p95_ms, "latency-p95"],
      [m.latency_p50_ms, "latency-p50"],
    ]) {
      chart.append(svg("rect", { x: left, y: y + 4, width: scale(ms), height: 14, class: colour, rx: 2 }));
    }
    const label = `p50 ${m.latency_p50_ms} · p95 ${m.latency_p95_ms}`;
    chart.append(svg("text", { x: left + scale(m.latency_p95_ms) + 6, y: y + 15 }, label));
  });
  return el(
    "div",
    {},
    chart,
    legend([
      ["p50", "latency-p50"],
      ["p95", "latency-p95"],
    ]),
  );
}
