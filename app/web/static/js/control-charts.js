// The control room's charts, drawn with the vendored uPlot (global `uPlot`, loaded by a classic
// script before this module) from /api/dashboard/charts. Each chart also gets its numbers as a
// table for screen readers (the canvas is aria-hidden) and a one-line summary everyone sees.
import { t } from "./i18n.js";
import { el, fill } from "./shell.js";

const INK = "#1a1f24";
const GRID = "#d0d7de";
const BLUE = "#0b5cad";
const GREEN = "#146c2e";
const HEIGHT = 220;
const plots = new Map(); // container id -> uPlot

function seconds(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return t("{s} s", { s });
  return t("{m} min {s} s", { m: Math.floor(s / 60), s: String(s % 60).padStart(2, "0") });
}

function axis(extra = {}) {
  return { stroke: INK, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, ...extra };
}

function bars() {
  return window.uPlot.paths.bars({ size: [0.6, 60] });
}

function widthOf(node) {
  return Math.max(220, Math.floor(node.clientWidth || node.parentElement.clientWidth || 300));
}

function draw(id, options, data) {
  const node = document.getElementById(id);
  if (!node || !window.uPlot) return;
  const old = plots.get(id);
  if (old) old.destroy();
  const plot = new window.uPlot({ width: widthOf(node), height: HEIGHT, legend: { show: false }, ...options }, data, node);
  plots.set(id, plot);
}

function table(id, caption, headers, rows) {
  fill(id, [
    el(
      "table",
      {},
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        rows.map((row) => el("tr", {}, row.map((cell, i) => (i === 0 ? el("th", { scope: "row" }, cell) : el("td", { class: "num" }, cell))))),
      ),
    ),
  ]);
}

function complaints(trend) {
  const days = trend.days;
  const xs = days.map((d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);
  const raised = days.map((d) => d.raised);
  const compliance = days.map((d) => d.compliance_percent);
  const total = raised.reduce((a, b) => a + b, 0);
  const met = days.reduce((a, d) => a + d.met, 0);
  const decided = days.reduce((a, d) => a + d.met + d.breached, 0);
  // Computed first: Babel would take a template literal among t()'s arguments for the message.
  const within = decided ? Math.round((100 * met) / decided) + " %" : "–";
  document.getElementById("chart-complaints-summary").textContent = t("{n} raised, {p} within SLA", { n: total, p: within });
  draw(
    "chart-complaints",
    {
      scales: { x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] }, y: { range: (u, min, max) => [0, Math.max(4, max)] }, pct: { range: [0, 100] } },
      axes: [axis(), axis({ label: t("Complaints") }), axis({ scale: "pct", side: 1, grid: { show: false }, label: t("SLA %") })],
      series: [
        {},
        { label: t("Raised"), stroke: BLUE, fill: "rgba(11,92,173,.35)", paths: bars(), points: { show: false } },
        { label: t("Within SLA %"), scale: "pct", stroke: GREEN, width: 2, spanGaps: true },
      ],
    },
    [xs, raised, compliance],
  );
  table(
    "chart-complaints-table",
    t("Complaints per day: raised, met SLA, breached SLA, compliance"),
    [t("Day"), t("Raised"), t("Met"), t("Breached"), t("Within SLA %")],
    days.map((d) => [d.date, d.raised, d.met, d.breached, d.compliance_percent ?? "–"]),
  );
}

function approvals(times) {
  const short = (sec) => (sec < 60 ? t("{s} s", { s: sec }) : t("{m} min", { m: Math.round(sec / 60) }));
  const labels = times.buckets.map((b, i) =>
    b.up_to_seconds === null ? t("> {s}", { s: short(times.buckets[i - 1].up_to_seconds) }) : t("≤ {s}", { s: short(b.up_to_seconds) }),
  );
  document.getElementById("chart-approvals-summary").textContent = t("{n} answered; p50 {p50}, p90 {p90}", {
    n: times.count,
    p50: seconds(times.p50_ms),
    p90: seconds(times.p90_ms),
  });
  draw(
    "chart-approvals",
    {
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(4, max)] } },
      axes: [axis({ values: (u, ticks) => ticks.map((i) => labels[i] ?? ""), splits: () => labels.map((_, i) => i), rotate: -35, size: 64 }), axis({ label: t("Visitors") })],
      series: [{}, { label: t("Answered"), stroke: BLUE, fill: "rgba(11,92,173,.45)", paths: bars(), points: { show: false } }],
    },
    [labels.map((_, i) => i), times.buckets.map((b) => b.count)],
  );
  table(
    "chart-approvals-table",
    t("Time from request to answer, visitors per band (p50 {p50}, p90 {p90})", { p50: seconds(times.p50_ms), p90: seconds(times.p90_ms) }),
    [t("Time to answer"), t("Visitors")],
    times.buckets.map((b, i) => [labels[i], b.count]),
  );
}

function deliveries(funnel) {
  const stages = ["requested", "sent", "delivered", "failed", "suppressed", "deferred", "pending"];
  const names = {
    requested: t("Requested"),
    sent: t("Sent"),
    delivered: t("Delivered"),
    failed: t("Failed"),
    suppressed: t("Suppressed"),
    deferred: t("Deferred"),
    pending: t("Pending"),
  };
  const totals = stages.map((s) => funnel.channels.reduce((sum, c) => sum + c[s], 0));
  document.getElementById("chart-deliveries-summary").textContent = t("{r} requested, {s} sent, {d} delivered", {
    r: totals[0],
    s: totals[1],
    d: totals[2],
  });
  draw(
    "chart-deliveries",
    {
      scales: { x: { time: false, range: [-0.5, stages.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(4, max)] } },
      axes: [axis({ values: (u, ticks) => ticks.map((i) => names[stages[i]] ?? ""), splits: () => stages.map((_, i) => i), rotate: -35, size: 84 }), axis({ label: t("Messages") })],
      series: [{}, { label: t("Messages"), stroke: BLUE, fill: "rgba(11,92,173,.45)", paths: bars(), points: { show: false } }],
    },
    [stages.map((_, i) => i), totals],
  );
  table(
    "chart-deliveries-table",
    t("Messages per channel by where they ended up"),
    [t("Channel"), ...stages.map((s) => names[s])],
    funnel.channels.map((c) => [c.channel, ...stages.map((s) => c[s])]),
  );
}

let last = null;

export function drawCharts(charts) {
  last = charts;
  complaints(charts.complaints);
  approvals(charts.approvals);
  deliveries(charts.deliveries);
}

// Follow the container's width (a wall screen, a laptop, a phone turned around).
let resizeTimer = null;
const observer = new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const [id, plot] of plots) {
      const node = document.getElementById(id);
      if (node && Math.abs(widthOf(node) - plot.width) > 4) plot.setSize({ width: widthOf(node), height: HEIGHT });
    }
  }, 100);
});
for (const id of ["chart-complaints", "chart-approvals", "chart-deliveries"]) {
  const node = document.getElementById(id);
  if (node) observer.observe(node.parentElement);
}

export function lastCharts() {
  return last;
}
