// The guard console: expected visitors, pass codes and QR, walk-ins with their live approval ladder,
// who is inside, overstays; check-in and check-out survive a dropped connection (queued in the
// outbox with an idempotency key), a walk-in is refused offline (it needs the flat's answer now).
//
// Every rule is the server's: this page shows the REST snapshots (/api/visitors/feeds/*) and applies
// the site's gate topic events to them; on `resync` (or after any reconnect) it refetches them.
import { allItems, api, ApiError, itemsOf, NetworkError } from "./api.js";
import { cameraProblem, startPhotoCamera, startScanner } from "./guard-camera.js";
import { t } from "./i18n.js";
import { Outbox } from "./outbox.js";
import * as permits from "./guard-permits.js";
import * as staff from "./guard-staff.js";
import { Realtime } from "./realtime.js";
import { age, clock, el, fill, showConnection, toast } from "./shell.js";

const config = JSON.parse(document.getElementById("guard-config").textContent || "{}");
const GATE_TOPIC = `site:${config.site_id}:gate`;
const FINAL = new Set(["approved", "denied", "leave_at_gate"]);
const DISMISSED_KEY = "opshub.guard.dismissed";

const approvals = new Map(); // approval id -> record shown in #waiting
const expected = new Map(); // pass id -> ExpectedVisitor
const inside = new Map(); // visit id -> InsideVisitor
const alerts = new Map(); // visit id -> {name, unit_label, kind, limit_minutes, checked_in_at}
const unitLabels = new Map(); // unit id -> label
const queued = new Map(); // visit id -> "check_in" | "check_out" (waiting in the outbox)
const dismissed = new Set(readDismissed());
let lastVerified = null; // {code} or {qr} of the pass last shown as valid

const KIND_NAMES = {
  guest: t("Guest"),
  cab: t("Cab"),
  delivery: t("Delivery"),
  service: t("Service"),
  daily_help: t("Daily help"),
};
const STATUS_NAMES = {
  pending: t("Waiting for the flat"),
  approved: t("Approved"),
  denied: t("Denied"),
  leave_at_gate: t("Leave at the gate"),
};
const RUNG_NAMES = {
  push: t("Asked in the app (push sent)"),
  message: t("SMS sent"),
  voice: t("Calling the flat"),
  guard_prompt: t("Call the flat yourself"),
};
const VIA_NAMES = {
  app: t("answered in the app"),
  link: t("answered by the SMS link"),
  voice: t("answered on the automated call"),
  guard: t("answer given to the guard by phone"),
};
const REFUSALS = {
  unknown: t("No pass has this code."),
  wrong_site: t("This pass is for another site."),
  expired: t("The pass has expired."),
  not_yet_valid: t("The pass is not valid yet."),
  outside_hours: t("The pass is not valid at this hour."),
  used: t("The pass was already used."),
  revoked: t("The flat cancelled this pass."),
  blocklisted: t("This visitor is on the blocklist. Do not let them in."),
};

const kindName = (kind) => KIND_NAMES[kind] || kind;

function readDismissed() {
  try {
    return JSON.parse(sessionStorage.getItem(DISMISSED_KEY) || "[]");
  } catch {
    return [];
  }
}

function isOffline() {
  return navigator.onLine === false || realtime.state === "offline";
}

// ---------------------------------------------------------------------------- the network

const realtime = new Realtime({ gate: config.gate || "main" });
const outbox = new Outbox("guard", {
  onChange: (items) => {
    syncQueued(items);
    renderAll();
  },
  onDone: (item, answer) => {
    if (item.kind === "verify") showVerifyAnswer(answer, true);
    else toast(t("Sent: {what}", { what: item.label }));
    refetchSoon();
  },
  onFailed: (item, error) => {
    toast(t("Not done: {what}. {why}", { what: item.label, why: error.message || "" }), "bad");
    refetchSoon();
  },
});

function syncQueued(items) {
  queued.clear();
  for (const item of items) if (item.visitId) queued.set(item.visitId, item.kind);
  const badge = document.getElementById("outbox-state");
  badge.hidden = items.length === 0;
  badge.textContent = t("{n} waiting to be sent", { n: items.length });
}

let refetchTimer = null;
function refetchSoon() {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(() => refetchAll(), 150);
}

async function refetchAll() {
  await Promise.all([
    loadWaiting(),
    loadExpected(),
    loadInside(),
    permits.load().catch(reportLoadError),
    staff.load().catch(reportLoadError),
  ]);
  // The console's first data is on screen (bench/console_load.py times this).
  document.body.dataset.ready = "true";
}

async function loadWaiting() {
  try {
    const [pending, answered] = await Promise.all([
      allItems("/api/visitors/feeds/pending"),
      allItems("/api/visitors/feeds/answered"),
    ]);
    const seen = new Set();
    for (const view of [...pending, ...answered]) {
      seen.add(view.id);
      mergeApproval(fromView(view));
    }
    // Gone from both lists: let in, or answered long ago.
    for (const id of [...approvals.keys()]) if (!seen.has(id)) approvals.delete(id);
    for (const record of approvals.values()) {
      if (record.rung === "guard_prompt" && record.status === "pending" && !record.call) loadCallList(record);
    }
    renderWaiting();
    renderExpected();
  } catch (error) {
    reportLoadError(error);
  }
}

async function loadCallList(record) {
  try {
    record.call = await allItems(`/api/visitors/approvals/${record.id}/call-list`);
    renderWaiting();
  } catch {
    // Shown without the numbers; the next guard_prompt event or refetch brings them.
  }
}

async function loadExpected() {
  try {
    const list = await allItems("/api/visitors/feeds/expected");
    expected.clear();
    for (const item of list) {
      expected.set(item.pass_id, item);
      unitLabels.set(item.unit_id, item.unit_label);
    }
    renderExpected();
  } catch (error) {
    reportLoadError(error);
  }
}

async function loadInside() {
  try {
    const list = await allItems("/api/visitors/feeds/inside");
    inside.clear();
    for (const item of list) {
      inside.set(item.visit.id, item);
      unitLabels.set(item.visit.unit_id, item.unit_label);
      if (item.overstay && !alerts.has(item.visit.id)) {
        alerts.set(item.visit.id, {
          name: item.visit.name,
          unit_label: item.unit_label,
          kind: item.visit.kind,
          checked_in_at: item.visit.checked_in_at,
        });
      }
    }
    for (const id of [...alerts.keys()]) if (!inside.has(id)) alerts.delete(id);
    renderInside();
    renderAlerts();
  } catch (error) {
    reportLoadError(error);
  }
}

async function loadUnits() {
  const select = document.getElementById("walkin-unit");
  const units = [];
  try {
    for (let offset = 0; ; offset += 500) {
      const page = await api(`/api/units?limit=500&offset=${offset}`);
      const items = itemsOf(page);
      units.push(...items);
      if (items.length < 500 || (page.total !== undefined && units.length >= page.total)) break;
    }
  } catch (error) {
    reportLoadError(error);
    return;
  }
  for (const unit of units) unitLabels.set(unit.id, unit.label);
  const keep = select.value;
  fill(select, [
    el("option", { value: "" }, t("Choose the flat")),
    ...units.map((unit) => el("option", { value: unit.id, selected: unit.id === keep }, unit.label)),
  ]);
  renderAll();
}

function reportLoadError(error) {
  if (error instanceof NetworkError) return; // the offline banner says it
  toast(error.message || String(error), "bad");
}

// ---------------------------------------------------------------------------- approvals

function currentRung(steps) {
  let found = { step: 0, action: "push", at: null };
  for (const step of steps || []) {
    if (step.step < 1000 && step.step >= found.step) found = step;
  }
  return found;
}

function fromView(view) {
  const rung = currentRung(view.steps);
  return {
    id: view.id,
    visit_id: view.visit_id,
    unit_id: view.unit_id,
    unit_label: view.unit_label,
    name: view.visitor_name,
    kind: view.kind,
    purpose: view.purpose,
    has_photo: view.has_photo,
    status: view.status,
    requested_at: view.requested_at,
    decided_at: view.decided_at,
    decided_via: view.decided_via,
    step: rung.step,
    rung: rung.action,
    rung_at: rung.at || view.requested_at,
  };
}

/** Merge what we learnt; an answer is final, so an older snapshot never turns it back to pending. */
function mergeApproval(record) {
  const known = approvals.get(record.id);
  if (!known) {
    if (dismissed.has(record.id)) return;
    approvals.set(record.id, record);
    return;
  }
  if (FINAL.has(known.status) && !FINAL.has(record.status)) {
    record.status = known.status;
    record.decided_at = known.decided_at;
    record.decided_via = known.decided_via;
  }
  if (known.step > record.step) {
    record.step = known.step;
    record.rung = known.rung;
    record.rung_at = known.rung_at;
  }
  record.call = record.call || known.call;
  record.fresh = known.fresh;
  approvals.set(record.id, record);
}

function onApprovalRequested(data) {
  unitLabels.set(data.unit_id, data.unit_label);
  mergeApproval({
    id: data.approval_id,
    visit_id: data.visit_id,
    unit_id: data.unit_id,
    unit_label: data.unit_label,
    name: data.name,
    kind: data.kind,
    purpose: data.purpose,
    has_photo: data.has_photo,
    status: "pending",
    requested_at: data.requested_at,
    step: 0,
    rung: "push",
    rung_at: data.requested_at,
  });
  renderWaiting();
}

function onApprovalEscalated(data) {
  const record = approvals.get(data.approval_id);
  if (!record) {
    refetchSoon();
    return;
  }
  // A rung that is run again (its worker died before recording it done) publishes its event again:
  // only the event that moves the record to a new step tells the guard anything new.
  const advanced = data.step > record.step;
  if (data.step >= record.step) {
    record.step = data.step;
    record.rung = data.action;
    record.rung_at = data.at;
  }
  if (data.call && data.call.length) record.call = data.call;
  renderWaiting();
  if (advanced && data.action === "guard_prompt" && record.status === "pending") {
    toast(t("Nobody answered for {name}: call {unit} yourself.", { name: record.name, unit: record.unit_label }), "bad");
  }
}

function onApprovalResolved(data) {
  const record = approvals.get(data.approval_id);
  if (!record) {
    refetchSoon();
    return;
  }
  record.status = data.decision;
  record.decided_at = data.decided_at;
  record.decided_via = data.decided_via;
  record.fresh = true;
  renderWaiting();
  renderExpected();
  toast(`${record.name} (${record.unit_label}): ${STATUS_NAMES[data.decision] || data.decision}`);
  setTimeout(() => {
    record.fresh = false;
    renderWaiting();
  }, 15000);
}

async function answerByPhone(record, decision) {
  if (isOffline()) {
    toast(t("Offline: the answer cannot be recorded now. Try again when the connection is back."), "bad");
    return;
  }
  try {
    const view = await api(`/api/visitors/approvals/${record.id}/answer`, { json: { decision } });
    mergeApproval({ ...fromView(view), fresh: true });
    renderWaiting();
    renderExpected();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) refetchSoon();
    toast(error.message, "bad");
  }
}

function dismiss(record) {
  approvals.delete(record.id);
  dismissed.add(record.id);
  sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...dismissed].slice(-200)));
  renderWaiting();
}

// ---------------------------------------------------------------------------- check in / out

async function queueVisitAction(visitId, kind, label) {
  const path = `/api/visitors/visits/${visitId}/${kind === "check_in" ? "check-in" : "check-out"}`;
  try {
    const answer = await outbox.send({ method: "POST", path, label, visitId, kind });
    if (answer && answer.queued) {
      toast(t("Offline: {what} is kept and will be sent when the connection is back.", { what: label }));
    } else {
      refetchSoon();
    }
  } catch (error) {
    toast(error.message, "bad");
    refetchSoon();
  }
}

function checkInWalkIn(record) {
  queueVisitAction(record.visit_id, "check_in", t("Check in {name}", { name: record.name }));
}

function checkOut(item) {
  queueVisitAction(item.visit.id, "check_out", t("Check out {name}", { name: item.visit.name }));
}

function onArrived(data) {
  for (const record of approvals.values()) if (record.visit_id === data.visit_id) approvals.delete(record.id);
  if (data.pass_id) lastVerified = lastVerified && lastVerified.pass_id === data.pass_id ? null : lastVerified;
  renderWaiting();
  // The snapshot carries the unit label and the pass's remaining validity: refetch rather than guess.
  refetchSoon();
}

function onDeparted(data) {
  inside.delete(data.visit_id);
  alerts.delete(data.visit_id);
  renderInside();
  renderAlerts();
}

function onOverstay(data) {
  alerts.set(data.visit_id, data);
  const item = inside.get(data.visit_id);
  if (item) item.overstay = true;
  renderAlerts();
  renderInside();
}

// ---------------------------------------------------------------------------- rendering

/** Re-render a list, keeping keyboard focus on the same control of the same visitor. */
function renderList(id, items, keyAttr) {
  const list = document.getElementById(id);
  const active = document.activeElement;
  let focusKey = null;
  let focusAction = null;
  if (active && list.contains(active)) {
    focusKey = active.closest("li")?.getAttribute(keyAttr);
    focusAction = active.dataset.action;
  }
  fill(list, items);
  document.getElementById(`${id}-count`).textContent = String(items.length);
  document.getElementById(`${id}-empty`).hidden = items.length > 0;
  if (focusKey && focusAction) {
    const again = list.querySelector(`li[${keyAttr}="${focusKey}"] [data-action="${focusAction}"]`);
    if (again) again.focus();
  }
}

function photoOf(visitId, name) {
  return el("img", {
    class: "thumb",
    src: `/api/visitors/visits/${visitId}/photo`,
    alt: t("Photo of {name}", { name }),
    loading: "lazy",
  });
}

function rungText(record) {
  if (record.status !== "pending") {
    const via = record.decided_via ? VIA_NAMES[record.decided_via] || record.decided_via : "";
    return [t("Answered at {time}", { time: clock(record.decided_at) }), via].filter(Boolean).join(", ");
  }
  return RUNG_NAMES[record.rung] || record.rung;
}

function waitingItem(record) {
  const pending = record.status === "pending";
  const queuedKind = queued.get(record.visit_id);
  const actions = [];
  if (record.status === "approved") {
    actions.push(
      el(
        "button",
        {
          type: "button",
          class: "btn-ok big",
          dataset: { action: "check-in" },
          disabled: queuedKind === "check_in",
          onclick: () => checkInWalkIn(record),
        },
        queuedKind === "check_in" ? t("Check-in queued") : t("Check in"),
      ),
    );
  }
  if (pending && record.rung === "guard_prompt") {
    actions.push(
      el("button", { type: "button", class: "btn-ok", dataset: { action: "phone-yes" }, onclick: () => answerByPhone(record, "approved") }, t("The flat said yes")),
      el("button", { type: "button", class: "btn-bad", dataset: { action: "phone-no" }, onclick: () => answerByPhone(record, "denied") }, t("The flat said no")),
    );
  }
  if (record.status === "denied" || record.status === "leave_at_gate") {
    actions.push(el("button", { type: "button", class: "btn", dataset: { action: "dismiss" }, onclick: () => dismiss(record) }, t("Done")));
  }
  const callList =
    pending && record.rung === "guard_prompt" && record.call && record.call.length
      ? el(
          "ul",
          { class: "call-list", "aria-label": t("Call these occupants") },
          record.call.map((person) =>
            el(
              "li",
              {},
              el("span", { class: "call-name" }, person.name || t("Occupant")),
              " ",
              person.mobile
                ? el("a", { class: "btn call-number", href: `tel:${person.mobile}` }, person.mobile)
                : el("span", { class: "muted" }, t("no mobile number")),
            ),
          ),
        )
      : null;
  const statusClass = { approved: "ok", denied: "bad", leave_at_gate: "warn" }[record.status] || "";
  return el(
    "li",
    {
      class: `visitor status-${record.status}${record.fresh ? " fresh" : ""}`,
      dataset: { approvalId: record.id, visitId: record.visit_id, status: record.status, rung: record.rung },
    },
    el(
      "div",
      { class: "visitor-main" },
      record.has_photo ? photoOf(record.visit_id, record.name) : null,
      el(
        "div",
        { class: "grow" },
        el("div", { class: "visitor-name" }, record.name),
        el("div", { class: "visitor-unit" }, record.unit_label),
        el("div", { class: "muted" }, [kindName(record.kind), record.purpose].filter(Boolean).join(" · ")),
      ),
      el("span", { class: `status-badge badge ${statusClass}` }, STATUS_NAMES[record.status] || record.status),
    ),
    el(
      "div",
      { class: "row visitor-ladder" },
      el("span", { class: `rung rung-${record.rung}` }, rungText(record)),
      pending ? el("span", { class: "age num", dataset: { since: record.requested_at } }, age(record.requested_at)) : null,
    ),
    callList,
    actions.length ? el("div", { class: "row visitor-actions" }, actions) : null,
  );
}

function renderWaiting() {
  const records = [...approvals.values()].sort((a, b) => {
    const pa = a.status === "pending" ? 0 : 1;
    const pb = b.status === "pending" ? 0 : 1;
    return pa - pb || String(a.requested_at).localeCompare(String(b.requested_at));
  });
  renderList("waiting", records.map(waitingItem), "data-approval-id");
}

function validity(item) {
  if (item.schedule !== "one_time" && item.day_start && item.day_end) return `${item.day_start}–${item.day_end}`;
  return `${clock(item.valid_from)}–${clock(item.valid_until)}`;
}

function expectedPassItem(item) {
  return el(
    "li",
    { class: "visitor", dataset: { passId: item.pass_id } },
    el(
      "div",
      { class: "visitor-main" },
      el(
        "div",
        { class: "grow" },
        el("div", { class: "visitor-name" }, item.name),
        el("div", { class: "visitor-unit" }, item.unit_label),
        el(
          "div",
          { class: "muted" },
          [kindName(item.kind), validity(item), item.has_vehicle ? t("with a vehicle") : ""].filter(Boolean).join(" · "),
        ),
      ),
      el(
        "button",
        { type: "button", class: "btn", dataset: { action: "check-in" }, onclick: () => askForCode(item) },
        t("Check in"),
      ),
    ),
  );
}

function expectedWalkInItem(record) {
  const queuedKind = queued.get(record.visit_id);
  return el(
    "li",
    { class: "visitor status-approved", dataset: { visitId: record.visit_id } },
    el(
      "div",
      { class: "visitor-main" },
      el(
        "div",
        { class: "grow" },
        el("div", { class: "visitor-name" }, record.name),
        el("div", { class: "visitor-unit" }, record.unit_label),
        el("div", { class: "muted" }, [kindName(record.kind), t("Approved walk-in")].join(" · ")),
      ),
      el(
        "button",
        {
          type: "button",
          class: "btn-ok",
          dataset: { action: "check-in" },
          disabled: queuedKind === "check_in",
          onclick: () => checkInWalkIn(record),
        },
        queuedKind === "check_in" ? t("Check-in queued") : t("Check in"),
      ),
    ),
  );
}

function renderExpected() {
  const walkIns = [...approvals.values()].filter((r) => r.status === "approved").map(expectedWalkInItem);
  const passes = [...expected.values()].map(expectedPassItem);
  const list = document.getElementById("expected");
  const items = [...walkIns, ...passes];
  const active = document.activeElement;
  const hadFocus = active && list.contains(active);
  fill(list, items);
  document.getElementById("expected-count").textContent = String(items.length);
  document.getElementById("expected-empty").hidden = items.length > 0;
  if (hadFocus) list.querySelector("button")?.focus();
}

function insideItem(item) {
  const visit = item.visit;
  const queuedKind = queued.get(visit.id);
  return el(
    "li",
    { class: `visitor${item.overstay ? " overstay" : ""}`, dataset: { visitId: visit.id } },
    el(
      "div",
      { class: "visitor-main" },
      el(
        "div",
        { class: "grow" },
        el("div", { class: "visitor-name" }, visit.name),
        el("div", { class: "visitor-unit" }, item.unit_label),
        el(
          "div",
          { class: "muted" },
          kindName(visit.kind),
          " · ",
          t("in since {time}", { time: clock(visit.checked_in_at) }),
          " · ",
          el("span", { class: "age num", dataset: { since: visit.checked_in_at } }, age(visit.checked_in_at)),
        ),
        item.overstay ? el("span", { class: "badge bad" }, t("Overstay")) : null,
      ),
      el(
        "button",
        {
          type: "button",
          class: "btn big",
          dataset: { action: "check-out" },
          disabled: queuedKind === "check_out",
          onclick: () => checkOut(item),
        },
        queuedKind === "check_out" ? t("Check-out queued") : t("Check out"),
      ),
    ),
  );
}

function renderInside() {
  const items = [...inside.values()].sort((a, b) =>
    String(a.visit.checked_in_at).localeCompare(String(b.visit.checked_in_at)),
  );
  renderList("inside", items.map(insideItem), "data-visit-id");
}

function renderAlerts() {
  const card = document.getElementById("alerts-card");
  const items = [...alerts.entries()].map(([visitId, alert]) =>
    el(
      "li",
      { class: "alert-item", dataset: { visitId } },
      el("strong", {}, `${alert.name} (${alert.unit_label})`),
      " ",
      alert.limit_minutes
        ? t("{kind}: inside past the {n}-minute limit, since {time}.", {
            kind: kindName(alert.kind),
            n: alert.limit_minutes,
            time: clock(alert.checked_in_at),
          })
        : t("{kind}: inside past the limit, since {time}.", { kind: kindName(alert.kind), time: clock(alert.checked_in_at) }),
    ),
  );
  fill("alerts", items);
  card.hidden = items.length === 0;
}

function renderAll() {
  renderWaiting();
  renderExpected();
  renderInside();
}

function tick() {
  for (const node of document.querySelectorAll(".age[data-since]")) node.textContent = age(node.dataset.since);
  document.getElementById("guard-clock").textContent = clock(new Date().toISOString());
}

// ---------------------------------------------------------------------------- pass code and QR

const resultBox = document.getElementById("verify-result");
const codeInput = document.getElementById("pass-code");

function showResult(kind, title, lines, actions = []) {
  fill(resultBox, [
    el(
      "div",
      { class: `result result-${kind}` },
      el("p", { class: "result-title" }, title),
      ...lines.filter(Boolean).map((line) => el("p", { class: "result-line" }, line)),
      actions.length ? el("div", { class: "row" }, actions) : null,
    ),
  ]);
}

function askForCode(item) {
  codeInput.focus();
  showResult("info", t("Ask {name} for the pass code", { name: item.name }), [
    `${item.unit_label} · ${kindName(item.kind)}`,
    t("Type it above and press Verify, or scan the QR code."),
  ]);
}

function showVerifyAnswer(answer, fromQueue = false) {
  const unit = unitLabels.get(answer.unit_id) || "";
  const plate =
    answer.plate_matches === false ? t("The vehicle plate is not the one on the pass.") : null;
  if (answer.outcome === "refused") {
    showResult("bad", t("Not valid"), [
      REFUSALS[answer.reason] || answer.reason,
      answer.visitor_name ? `${answer.visitor_name}${unit ? ` · ${unit}` : ""}` : null,
      plate,
    ]);
    return;
  }
  if (answer.outcome === "valid") {
    showResult(
      "ok",
      t("Valid pass"),
      [answer.visitor_name, unit, kindName(answer.kind), plate],
      [
        el(
          "button",
          { type: "button", class: "btn-ok big", id: "verify-check-in", onclick: () => checkInPass() },
          t("Check in"),
        ),
      ],
    );
    document.getElementById("verify-check-in")?.focus();
    return;
  }
  showResult("ok", t("Checked in"), [answer.visitor_name, unit, fromQueue ? t("(sent after the connection came back)") : null]);
  refetchSoon();
}

async function verify(payload) {
  if (isOffline()) {
    showResult("bad", t("Offline"), [t("A pass can only be checked with the hub. Try again when the connection is back.")]);
    return;
  }
  showResult("info", t("Checking…"), []);
  try {
    const answer = await api("/api/visitors/gate/verify", { json: { ...payload, gate: config.gate, check_in: false } });
    lastVerified = answer.outcome === "valid" ? { ...payload, pass_id: answer.pass_id, name: answer.visitor_name } : null;
    showVerifyAnswer(answer);
  } catch (error) {
    if (error instanceof NetworkError) {
      showResult("bad", t("Offline"), [t("A pass can only be checked with the hub. Try again when the connection is back.")]);
    } else if (error instanceof ApiError && error.status === 429) {
      showResult("bad", t("Too many wrong codes"), [t("Wait a few minutes before the next try."), error.message]);
    } else {
      showResult("bad", t("Not valid"), [error.fieldMessage ? error.fieldMessage("code") || error.message : error.message]);
    }
  }
}

async function checkInPass() {
  if (!lastVerified) return;
  const { pass_id: passId, name, ...payload } = lastVerified;
  lastVerified = null;
  try {
    const answer = await outbox.send({
      method: "POST",
      path: "/api/visitors/gate/verify",
      json: { ...payload, gate: config.gate, check_in: true },
      label: t("Check in {name}", { name }),
      kind: "verify",
    });
    if (answer && answer.queued) {
      showResult("info", t("Check-in queued"), [t("Offline: it will be sent when the connection is back."), name]);
    } else {
      showVerifyAnswer(answer);
    }
  } catch (error) {
    showResult("bad", t("Not valid"), [error.message]);
  }
}

document.getElementById("code-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const code = codeInput.value.replace(/\s+/g, "");
  if (!/^\d{6}$/.test(code)) {
    showResult("bad", t("Type the 6 digits of the pass code."), []);
    codeInput.focus();
    return;
  }
  codeInput.value = "";
  verify({ code });
});

let scanner = null;
const scannerBox = document.getElementById("scanner");
const scannerStatus = document.getElementById("scanner-status");

async function openScanner() {
  scannerBox.hidden = false;
  scannerStatus.textContent = t("Starting the camera…");
  try {
    scanner = await startScanner(document.getElementById("scanner-video"), config.jsqr_url, (text) => {
      closeScanner();
      verify({ qr: text });
    });
    scannerStatus.textContent = t("Hold the QR code in front of the camera.");
  } catch (error) {
    scannerStatus.textContent = error.name ? cameraProblem(error) : error.message;
    scanner = null;
  }
}

function closeScanner() {
  if (scanner) scanner.stop();
  scanner = null;
  scannerBox.hidden = true;
}

document.getElementById("scan-open").addEventListener("click", openScanner);
document.getElementById("scan-close").addEventListener("click", closeScanner);

// ---------------------------------------------------------------------------- walk-ins

const walkinForm = document.getElementById("walkin-form");
const walkinStatus = document.getElementById("walkin-status");
const photoInput = document.getElementById("walkin-photo");
const preview = document.getElementById("walkin-preview");
let snapped = null; // a JPEG Blob from the camera
let photoCamera = null;

function showPreview(blob) {
  if (preview.src) URL.revokeObjectURL(preview.src);
  if (!blob) {
    preview.hidden = true;
    preview.removeAttribute("src");
    return;
  }
  preview.src = URL.createObjectURL(blob);
  preview.hidden = false;
}

photoInput.addEventListener("change", () => {
  snapped = null;
  showPreview(photoInput.files[0] || null);
});

document.getElementById("camera-open").addEventListener("click", async () => {
  const box = document.getElementById("camera");
  box.hidden = false;
  try {
    photoCamera = await startPhotoCamera(document.getElementById("camera-video"));
  } catch (error) {
    box.hidden = true;
    walkinStatus.className = "error";
    walkinStatus.textContent = error.name ? cameraProblem(error) : error.message;
  }
});

function closeCamera() {
  if (photoCamera) photoCamera.stop();
  photoCamera = null;
  document.getElementById("camera").hidden = true;
}

document.getElementById("camera-close").addEventListener("click", closeCamera);
document.getElementById("camera-snap").addEventListener("click", async () => {
  if (!photoCamera) return;
  snapped = await photoCamera.snap();
  photoInput.value = "";
  showPreview(snapped);
  closeCamera();
});

const unitFilter = document.getElementById("walkin-unit-filter");
unitFilter.addEventListener("input", () => {
  const select = document.getElementById("walkin-unit");
  const needle = unitFilter.value.trim().toLowerCase();
  let matches = [];
  for (const option of select.options) {
    if (!option.value) continue;
    const shown = !needle || option.textContent.toLowerCase().includes(needle);
    option.hidden = !shown;
    option.disabled = !shown;
    if (shown) matches.push(option);
  }
  if (matches.length === 1) select.value = matches[0].value;
  else if (select.selectedOptions[0]?.hidden) select.value = "";
});

function walkinMessage(kind, text) {
  walkinStatus.className = kind === "bad" ? "error" : "muted";
  walkinStatus.textContent = text;
}

const FIELD_INPUTS = {
  name: "walkin-name",
  phone: "walkin-phone",
  purpose: "walkin-purpose",
  unit_id: "walkin-unit",
  kind: "walkin-kind",
  plate: "walkin-plate",
  photo: "walkin-photo",
};

walkinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  for (const id of Object.values(FIELD_INPUTS)) document.getElementById(id).removeAttribute("aria-invalid");
  if (isOffline()) {
    // Not queued: the flat must answer while the visitor stands here.
    walkinMessage("bad", t("Offline: a walk-in needs the flat's answer now and cannot be sent. Call the flat on the intercom, or try again when the connection is back."));
    return;
  }
  const data = new FormData(walkinForm);
  if (!String(data.get("name") || "").trim()) {
    walkinMessage("bad", t("Type the visitor's name."));
    document.getElementById("walkin-name").setAttribute("aria-invalid", "true");
    document.getElementById("walkin-name").focus();
    return;
  }
  if (!data.get("unit_id")) {
    walkinMessage("bad", t("Choose the flat."));
    document.getElementById("walkin-unit").setAttribute("aria-invalid", "true");
    document.getElementById("walkin-unit").focus();
    return;
  }
  data.delete("photo");
  if (snapped) data.set("photo", snapped, "visitor.jpg");
  else if (photoInput.files[0]) data.set("photo", photoInput.files[0]);
  data.set("gate", config.gate);
  const button = walkinForm.querySelector("button[type=submit]");
  button.disabled = true;
  walkinMessage("", t("Asking the flat…"));
  try {
    const created = await api("/api/visitors/walk-ins", { form: data });
    const visit = created.visit;
    mergeApproval({
      id: created.approval_id,
      visit_id: visit.id,
      unit_id: visit.unit_id,
      unit_label: unitLabels.get(visit.unit_id) || "",
      name: visit.name,
      kind: visit.kind,
      purpose: visit.purpose,
      has_photo: Boolean(data.get("photo")),
      status: "pending",
      requested_at: visit.created_at,
      step: 0,
      rung: "push",
      rung_at: visit.created_at,
    });
    renderWaiting();
    walkinMessage(
      "",
      created.occupants_asked
        ? t("Sent to {n} people of the flat. Waiting for their answer.", { n: created.occupants_asked })
        : t("Nobody lives in this flat on record: call the flat yourself."),
    );
    walkinForm.reset();
    snapped = null;
    showPreview(null);
    unitFilter.dispatchEvent(new Event("input"));
  } catch (error) {
    if (error instanceof NetworkError) {
      walkinMessage("bad", t("Offline: a walk-in needs the flat's answer now and cannot be sent. Call the flat on the intercom, or try again when the connection is back."));
    } else if (error instanceof ApiError && error.problem?.extra?.reason === "blocklisted") {
      walkinMessage("bad", t("This visitor is on the blocklist. Do not let them in."));
    } else if (error instanceof ApiError) {
      const field = (error.problem.errors || [])[0]?.field;
      if (field && FIELD_INPUTS[field]) {
        document.getElementById(FIELD_INPUTS[field]).setAttribute("aria-invalid", "true");
        document.getElementById(FIELD_INPUTS[field]).focus();
      }
      walkinMessage("bad", error.fieldMessage(field) ? `${field}: ${error.fieldMessage(field)}` : error.message);
    } else {
      walkinMessage("bad", String(error));
    }
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------- start

const HANDLERS = {
  "visitor.approval_requested": onApprovalRequested,
  "visitor.approval_escalated": onApprovalEscalated,
  "visitor.approval_resolved": onApprovalResolved,
  "visitor.arrived": onArrived,
  "visitor.departed": onDeparted,
  "visitor.overstay": onOverstay,
  "visitor.expected": () => loadExpected(),
  "visitor.pass_revoked": (data) => {
    expected.delete(data.pass_id);
    renderExpected();
  },
  "visitor.anpr_review": (data) => toast(t("Camera could not read a plate well: check {plate} by eye.", { plate: data.plate })),
};

const MODULE_HANDLERS = { ...permits.HANDLERS, ...staff.HANDLERS };
permits.init(config);
staff.init(config);
realtime.on(
  GATE_TOPIC,
  (event) => {
    const handler = HANDLERS[event.type] || MODULE_HANDLERS[event.type];
    if (handler) handler(event.data || {});
  },
  () => refetchAll(),
);
let everOnline = false;
realtime.onStatus((state) => {
  if (state !== "online") return;
  // After a drop the gateway replays what was missed; a refetch as well costs three small GETs and
  // also covers what happened while the hub itself was unreachable.
  if (everOnline) refetchSoon();
  everOnline = true;
});
showConnection(realtime, outbox);
syncQueued(outbox.items);
realtime.start();
refetchAll();
loadUnits();
tick();
setInterval(tick, 1000);
window.addEventListener("online", () => outbox.flush());
