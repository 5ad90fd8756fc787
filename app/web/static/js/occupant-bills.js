// Bills: what the unit owes, paying it through the provider's hosted checkout, past invoices and receipts
// (each a PDF). Live on unit:{id}: an invoice issued, a payment received or a refund reloads the section.
import { api, itemsOf } from "./api.js";
import { t } from "./i18n.js";
import { el, fill } from "./shell.js";
import { config, report } from "./occupant-common.js";

const money = new Intl.NumberFormat(document.documentElement.lang === "hi" ? "hi-IN" : "en-IN", {
  style: "currency",
  currency: "INR",
});
const day = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { day: "numeric", month: "short", year: "numeric" });

export const STATUS = {
  open: t("Due"), partially_paid: t("Partly paid"), paid: t("Paid"), credited: t("Credited"),
};

/** Paise to a currency string: the API's integers are shown, never computed with. */
export function rupees(minor) {
  return money.format(minor / 100);
}

function unitId() {
  const select = document.getElementById("bills-unit");
  return select ? select.value : (config.units[0] || {}).id;
}

export function init({ realtime }) {
  realtime.onPrefix("unit:", (event) => {
    if (event.type.startsWith("billing.")) load().catch(report);
  }, () => load().catch(report));
  document.getElementById("bills-unit")?.addEventListener("change", () => load().catch(report));
  document.getElementById("pay-dues").addEventListener("click", () => pay(null));
}

export async function load() {
  const unit = unitId();
  if (!unit) return;
  const [dues, invoices, receipts] = await Promise.all([
    api(`/api/billing/units/${unit}/dues`),
    api(`/api/billing/invoices?unit_id=${unit}&limit=24`),
    api(`/api/billing/receipts?unit_id=${unit}&limit=24`),
  ]);
  renderDues(dues);
  renderInvoices(itemsOf(invoices));
  renderReceipts(itemsOf(receipts));
}

function renderDues(dues) {
  const box = document.getElementById("dues");
  box.dataset.outstanding = String(dues.outstanding_minor);
  box.dataset.advance = String(dues.advance_minor);
  document.getElementById("dues-amount").textContent = rupees(dues.outstanding_minor);
  const next = dues.next_due_date ? t("Due by {date}", { date: day.format(new Date(dues.next_due_date)) }) : t("Nothing due");
  const overdue = dues.overdue_minor ? ` · ${t("{amount} overdue", { amount: rupees(dues.overdue_minor) })}` : "";
  const advance = dues.advance_minor ? ` · ${t("{amount} paid in advance", { amount: rupees(dues.advance_minor) })}` : "";
  document.getElementById("dues-detail").textContent = next + overdue + advance;
  document.getElementById("pay-dues").hidden = dues.outstanding_minor <= 0;
}

function renderInvoices(invoices) {
  const items = invoices.map((invoice) =>
    el(
      "li",
      { dataset: { invoiceId: invoice.id, status: invoice.status } },
      el("span", { class: "grow" }, el("strong", {}, invoice.number), ` · ${invoice.period || day.format(new Date(invoice.issue_date))}`),
      el("span", { class: "num" }, rupees(invoice.total_minor)),
      el("span", { class: `badge ${invoice.status === "paid" ? "ok" : invoice.status === "open" ? "warn" : ""}`.trim() }, STATUS[invoice.status] || invoice.status),
      el("a", { href: `/api/billing/invoices/${invoice.id}/pdf`, class: "btn-quiet", download: "" }, t("PDF")),
      invoice.outstanding_minor > 0
        ? el("button", { type: "button", class: "btn-primary", onclick: () => pay(invoice.id) }, t("Pay {amount}", { amount: rupees(invoice.outstanding_minor) }))
        : null,
    ),
  );
  fill("invoices", items);
  document.getElementById("invoices-empty").hidden = items.length > 0;
}

function renderReceipts(receipts) {
  const items = receipts.map((receipt) =>
    el(
      "li",
      { dataset: { receiptId: receipt.id, receiptNumber: receipt.receipt_number } },
      el("span", { class: "grow" }, el("strong", {}, receipt.receipt_number), ` · ${day.format(new Date(receipt.captured_at))}`),
      el("span", { class: "num" }, rupees(receipt.amount_minor)),
      receipt.refunded_minor ? el("span", { class: "badge" }, t("{amount} refunded", { amount: rupees(receipt.refunded_minor) })) : null,
      el("a", { href: `/api/billing/receipts/${receipt.id}/pdf`, class: "btn-quiet", download: "" }, t("Receipt")),
    ),
  );
  fill("receipts", items);
  document.getElementById("receipts-empty").hidden = items.length > 0;
}

async function pay(invoiceId) {
  const status = document.getElementById("pay-status");
  status.textContent = t("Opening the payment page…");
  try {
    const checkout = await api(`/api/billing/units/${unitId()}/pay`, { json: invoiceId ? { invoice_id: invoiceId } : {} });
    window.location.assign(checkout.checkout_url);
  } catch (error) {
    status.textContent = "";
    report(error, t("Could not start the payment"));
  }
}
