// Collections on the control room: collected this month (live: billing.collected on site:{id}:control),
// what is outstanding and overdue, ageing buckets and the units owing most.
import { api, ApiError, NetworkError } from "./api.js";
import { t } from "./i18n.js";
import { el, fill } from "./shell.js";

const money = new Intl.NumberFormat(document.documentElement.lang === "hi" ? "hi-IN" : "en-IN", {
  style: "currency",
  currency: "INR",
  maximumFractionDigits: 0,
});
const BUCKETS = { not_due: t("Not due yet"), "0-30": t("0-30 days"), "31-60": t("31-60 days"), "61-90": t("61-90 days"), "90+": t("90+ days") };

function rupees(minor) {
  return money.format(Math.round(minor / 100));
}

function setCollected(period, minor, payments) {
  const node = document.getElementById("billing-collected");
  if (!node) return;
  node.dataset.collected = String(minor);
  node.dataset.period = period;
  node.textContent = rupees(minor);
  document.getElementById("billing-payments").textContent = t("{count} payments in {period}", { count: payments, period });
}

function render(board) {
  setCollected(board.period, board.collected_minor, board.payments);
  document.getElementById("billing-outstanding").textContent = rupees(board.outstanding_minor);
  document.getElementById("billing-overdue").textContent = rupees(board.overdue_minor);
  fill(
    "billing-ageing",
    board.ageing.map((bucket) =>
      el(
        "div",
        { class: "tile", dataset: { bucket: bucket.bucket, amount: String(bucket.amount_minor) } },
        el("span", { class: "tile-label" }, BUCKETS[bucket.bucket] || bucket.bucket),
        " ",
        el("span", { class: "kpi" }, rupees(bucket.amount_minor)),
        " ",
        el("span", { class: "muted" }, t("{count} units", { count: bucket.units })),
      ),
    ),
  );
  const rows = board.defaulters.map((d) =>
    el(
      "li",
      { dataset: { unitId: d.unit_id, bucket: d.bucket } },
      el("span", { class: "grow" }, el("strong", {}, d.unit_label)),
      el("span", { class: "num" }, rupees(d.overdue_minor)),
      el("span", { class: `badge ${d.days_overdue > 60 ? "bad" : "warn"}` }, t("{days} days", { days: d.days_overdue })),
    ),
  );
  fill("billing-defaulters", rows.length ? rows : [el("li", { class: "empty" }, t("No unit is overdue"))]);
}

let timer = null;
export function loadCollections() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    try {
      render(await api("/api/billing/collections"));
    } catch (error) {
      if (!(error instanceof NetworkError || error instanceof ApiError)) throw error;
    }
  }, 150);
}

/** billing.collected: the figure moves at once; the buckets follow from the board. */
export function onBillingEvent(event) {
  if (event.type !== "billing.collected") return;
  setCollected(event.data.period, event.data.collected_minor, event.data.payments);
  loadCollections();
}
