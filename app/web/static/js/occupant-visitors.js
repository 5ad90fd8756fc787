// Visitors: the waiting-visitor cards (live on unit:{id}: visitor.approval_requested / _resolved), the
// one-tap answer, pre-approval with the pass code and QR to share, and my passes.
import { ApiError, api, itemsOf, newKey } from "./api.js";
import { t } from "./i18n.js";
import { age, el, fill, toast } from "./shell.js";
import { APPROVAL_STATUS, KIND_NAMES, atSite, config, label, report, sameOrigin, showError } from "./occupant-common.js";

const approvals = new Map(); // approval id -> what the card shows
const dismissed = new Set();
let lastPass = null;

export function init({ realtime }) {
  realtime.onPrefix("unit:", onUnitEvent, () => loadApprovals().catch(report));
  document.getElementById("approvals").addEventListener("click", onCardClick);
  const form = document.getElementById("pass-form");
  form.addEventListener("submit", createPass);
  form.addEventListener("change", (event) => {
    if (event.target.name === "schedule") {
      const recurring = form.elements.schedule.value === "recurring";
      document.getElementById("pass-one-time").hidden = recurring;
      document.getElementById("pass-recurring").hidden = !recurring;
    }
  });
  document.getElementById("pass-from").value = localInputValue(thisMinute());
  const until = new Date(Date.now() + 30 * 24 * 3600 * 1000);
  document.getElementById("pass-until").value = until.toISOString().slice(0, 10);
  document.getElementById("pass-share").addEventListener("click", sharePass);
  setInterval(tickAges, 1000);
}

export async function load() {
  await Promise.all([loadApprovals(), loadPasses()]);
}

// ------------------------------------------------------------------ waiting visitors

async function loadApprovals() {
  const list = itemsOf(await api("/api/visitors/approvals"));
  for (const view of list) approvals.set(view.id, fromView(view));
  renderApprovals();
}

function fromView(view) {
  return {
    id: view.id,
    visit_id: view.visit_id,
    unit_label: view.unit_label,
    name: view.visitor_name,
    kind: view.kind,
    purpose: view.purpose,
    has_photo: view.has_photo,
    status: view.status,
    requested_at: view.requested_at,
    decided_by: view.decided_by,
    decided_by_name: view.decided_by_name,
    decided_via: view.decided_via,
  };
}

function onUnitEvent(event) {
  const data = event.data;
  if (event.type === "visitor.approval_requested") {
    const known = approvals.get(data.approval_id);
    approvals.set(data.approval_id, {
      ...(known || {}),
      id: data.approval_id,
      visit_id: data.visit_id,
      unit_label: data.unit_label,
      name: data.name,
      kind: data.kind,
      purpose: data.purpose,
      has_photo: data.has_photo,
      status: known ? known.status : "pending",
      requested_at: data.requested_at,
    });
    renderApprovals();
    if (!known) toast(t("{name} is at the gate", { name: data.name }));
  } else if (event.type === "visitor.approval_resolved") {
    resolved(data.approval_id, data.decision, data.decided_by, data.decided_via);
  }
}

function resolved(id, decision, decidedBy, via) {
  const known = approvals.get(id);
  if (!known) {
    refreshApproval(id);
    return;
  }
  known.status = decision;
  known.decided_by = decidedBy || null;
  known.decided_via = via || known.decided_via;
  renderApprovals();
  // The event carries who (an id); the approval's view carries their name.
  if (decidedBy && decidedBy !== config.person_id && !known.decided_by_name) refreshApproval(id);
}

async function refreshApproval(id) {
  try {
    approvals.set(id, fromView(await api(`/api/visitors/approvals/${id}`)));
    renderApprovals();
  } catch (error) {
    report(error);
  }
}

async function answer(id, decision, card) {
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  try {
    const view = await api(`/api/visitors/approvals/${id}/answer`, { method: "POST", json: { decision }, idempotencyKey: newKey() });
    approvals.set(id, fromView(view));
    renderApprovals();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && error.problem.extra?.decision) {
      // Someone else of the flat (or the gate) answered first: show theirs.
      const extra = error.problem.extra;
      resolved(id, extra.decision, extra.decided_by, extra.decided_via);
      refreshApproval(id);
      return;
    }
    for (const button of card.querySelectorAll("button")) button.disabled = false;
    report(error, t("Your answer did not reach the gate"));
  }
}

function onCardClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const card = button.closest("[data-approval-id]");
  const id = card.dataset.approvalId;
  if (button.dataset.action === "dismiss") {
    dismissed.add(id);
    renderApprovals();
  } else {
    answer(id, button.dataset.action, card);
  }
}

function whoAnswered(item) {
  const decision = label(APPROVAL_STATUS, item.status);
  let who;
  if (item.decided_by && item.decided_by === config.person_id) who = t("you");
  else if (item.decided_by_name) who = item.decided_by_name;
  else if (item.decided_via === "guard") who = t("the guard");
  else if (item.decided_by) who = t("another occupant of your flat");
  else who = t("the system");
  const via = { voice: t("on a phone call"), link: t("from the SMS link"), guard: t("at the gate") }[item.decided_via];
  return via ? t("{decision} by {who}, {via}", { decision, who, via }) : t("{decision} by {who}", { decision, who });
}

function approvalCard(item) {
  const pending = item.status === "pending";
  const details = [item.unit_label, label(KIND_NAMES, item.kind), item.purpose].filter(Boolean).join(" · ");
  return el(
    "li",
    { class: `approval card ${pending ? "pending" : "resolved"}`, dataset: { approvalId: item.id, status: item.status } },
    el("div", { class: "approval-head" },
      item.has_photo
        ? el("img", { class: "approval-photo", src: `/api/visitors/visits/${item.visit_id}/photo`, alt: t("Photo of {name}", { name: item.name }), width: 96, height: 96 })
        : el("div", { class: "approval-photo none", "aria-hidden": "true" }, (item.name || "?").slice(0, 1)),
      el("div", { class: "stack grow" },
        el("h3", {}, item.name),
        el("span", { class: "muted" }, details),
        pending
          ? el("span", { class: "muted" }, t("Waiting"), " ", el("span", { class: "num", dataset: { since: item.requested_at } }, age(item.requested_at)))
          : el("span", { class: "muted" }, atSite(item.requested_at)),
      ),
    ),
    pending
      ? el("div", { class: "approval-actions" },
          el("button", { type: "button", class: "btn-ok big", dataset: { action: "approved" } }, t("Approve")),
          el("button", { type: "button", class: "btn-bad big", dataset: { action: "denied" } }, t("Deny")),
          el("button", { type: "button", class: "btn-warn big", dataset: { action: "leave_at_gate" } }, t("Leave at gate")),
        )
      : el("div", { class: "row" },
          el("p", { class: `approval-result grow ${item.status}`, role: "status" }, whoAnswered(item)),
          el("button", { type: "button", class: "btn-quiet", dataset: { action: "dismiss" }, "aria-label": t("Hide {name}", { name: item.name }) }, t("Hide")),
        ),
  );
}

function renderApprovals() {
  const visible = [...approvals.values()]
    .filter((item) => !dismissed.has(item.id))
    .sort((a, b) => (a.status === "pending") - (b.status === "pending") || String(a.requested_at).localeCompare(String(b.requested_at)))
    .reverse();
  fill("approvals", visible.map(approvalCard));
  document.getElementById("gate").hidden = visible.length === 0;
}

function tickAges() {
  for (const node of document.querySelectorAll("#approvals [data-since]")) node.textContent = age(node.dataset.since);
}

// ------------------------------------------------------------------ passes

function thisMinute() {
  const now = new Date();
  now.setSeconds(0, 0);
  return now;
}

function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

async function createPass(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const box = document.getElementById("pass-error");
  const elements = form.elements;
  const name = elements.visitor_name.value.trim();
  if (!name) {
    showError(box, new Error(t("Give the visitor's name.")));
    elements.visitor_name.focus();
    return;
  }
  const body = {
    unit_id: elements.unit_id ? elements.unit_id.value : undefined,
    kind: elements.kind.value,
    visitor_name: name,
  };
  const phone = elements.visitor_phone.value.trim();
  if (phone) body.visitor_phone = phone;
  if (elements.schedule.value === "recurring") {
    const days = [...form.querySelectorAll('input[name="days"]:checked')].map((input) => Number(input.value));
    const until = elements.valid_until.value;
    body.recurring = {
      days,
      start: elements.start.value,
      end: elements.end.value,
      valid_until: until ? new Date(`${until}T23:59:00`).toISOString() : undefined,
    };
  } else {
    const from = elements.valid_from.value ? new Date(elements.valid_from.value) : new Date();
    const hours = Number(elements.hours.value || 4);
    body.one_time = { valid_from: from.toISOString(), valid_until: new Date(from.getTime() + hours * 3600 * 1000).toISOString() };
  }
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const created = await api("/api/visitors/passes", { json: body, idempotencyKey: newKey() });
    showError(box, null);
    showPass(created);
    elements.visitor_name.value = "";
    elements.visitor_phone.value = "";
    await loadPasses();
  } catch (error) {
    showError(box, error);
  } finally {
    submit.disabled = false;
  }
}

function showPass(created) {
  lastPass = created;
  const view = created.visitor_pass;
  document.getElementById("pass-created-title").textContent = t("Pass for {name}", { name: view.visitor_name });
  document.getElementById("pass-code").textContent = created.code;
  const qr = document.getElementById("pass-qr");
  qr.src = sameOrigin(created.qr_url);
  qr.alt = t("QR code of the pass for {name}", { name: view.visitor_name });
  document.getElementById("pass-qr-link").href = sameOrigin(created.qr_url);
  document.getElementById("pass-share-status").textContent = "";
  const card = document.getElementById("pass-created");
  card.hidden = false;
  card.scrollIntoView({ block: "nearest" });
}

function shareText(created) {
  const view = created.visitor_pass;
  return t("Your visitor pass for {unit}: code {code}, valid {from} to {until}. QR: {url}", {
    unit: view.unit_label, code: created.code, from: atSite(view.valid_from), until: atSite(view.valid_until), url: created.qr_url,
  });
}

async function sharePass() {
  if (!lastPass) return;
  const status = document.getElementById("pass-share-status");
  const text = shareText(lastPass);
  const data = { title: t("Visitor pass"), text, url: lastPass.qr_url };
  if (navigator.share && (!navigator.canShare || navigator.canShare(data))) {
    try {
      await navigator.share(data);
      status.textContent = t("Shared.");
      return;
    } catch (error) {
      if (error && error.name === "AbortError") return;
    }
  }
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = t("Copied: paste it into a message to your visitor.");
  } catch {
    status.textContent = text; // no clipboard access: the text to copy by hand
  }
}

async function loadPasses() {
  const passes = itemsOf(await api("/api/visitors/passes?limit=20"));
  fill(
    "passes",
    passes.map((pass) =>
      el("li", { dataset: { passId: pass.id, status: pass.status } },
        el("div", { class: "row" },
          el("strong", { class: "grow" }, pass.visitor_name),
          el("span", { class: `badge ${pass.status === "active" ? "ok" : ""}` }, label({ active: t("Active"), used: t("Used"), revoked: t("Revoked") }, pass.status)),
        ),
        el("div", { class: "muted" }, [label(KIND_NAMES, pass.kind), pass.unit_label, `${atSite(pass.valid_from)} – ${atSite(pass.valid_until)}`].join(" · ")),
        pass.status === "active"
          ? el("button", { type: "button", class: "btn-quiet", "aria-label": t("Revoke the pass for {name}", { name: pass.visitor_name }), onclick: () => revoke(pass) }, t("Revoke"))
          : null,
      ),
    ),
  );
  document.getElementById("passes-empty").hidden = passes.length > 0;
}

async function revoke(pass) {
  try {
    await api(`/api/visitors/passes/${pass.id}/revoke`, { method: "POST", json: {} });
    toast(t("Pass revoked"));
    await loadPasses();
  } catch (error) {
    report(error, t("Could not revoke the pass"));
  }
}
