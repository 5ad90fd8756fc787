// The control room: complaints by status and SLA, the gate feed, guard consoles online, slot
// availability, collections (billing), the announcement composer with live counters, 30-day charts, and
// the operations boards (the permit queue, staff attendance, the monthly sheet: control-operations.js), and
// maintenance (overdue AMC visits: control-maintenance.js).
//
// Each board starts from a REST snapshot and then follows the realtime topics: complaint and
// visitor events, presence and announcement progress on site:{id}:control, availability on
// site:{id}:slots. A `resync` (history gone, new epoch) refetches the snapshot.
import { api, itemsOf, ApiError, NetworkError } from "./api.js";
import { Announcements, wireComposer } from "./control-announce.js";
import { loadCollections, onBillingEvent } from "./control-billing.js";
import { drawCharts } from "./control-charts.js";
import { MaintenanceBoard } from "./control-maintenance.js";
import * as operations from "./control-operations.js";
import { t } from "./i18n.js";
import { Realtime } from "./realtime.js";
import { age, clock, el, fill, showConnection, toast, when } from "./shell.js";

const config = JSON.parse(document.getElementById("control-config").textContent || "{}");
const CONTROL = `site:${config.site_id}:control`;
const SLOTS = `site:${config.site_id}:slots`;
const KINDS = ["ev_connector", "parking_slot", "amenity"];
const FEED_LIMIT = 40;
const CHART_REFRESH_MS = 60000;
const BOARD_REFRESH_MS = 30000; // SLA states move with the clock, not only with events

/** realtime.js ignores ops it does not know; the control room also wants the `presence` snapshot. */
class ControlRealtime extends Realtime {
  constructor(options) {
    super(options);
    this.presenceListeners = [];
  }
  onPresence(listener) {
    this.presenceListeners.push(listener);
  }
  _onMessage(message) {
    if (message.op === "presence") {
      for (const listener of this.presenceListeners) listener(message);
      return;
    }
    super._onMessage(message);
  }
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

async function quietly(promise) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof NetworkError || error instanceof ApiError) return null;
    throw error;
  }
}

// ------------------------------------------------------------------------------ complaints

const STATUS_LABELS = {
  open: t("Open"),
  assigned: t("Assigned"),
  in_progress: t("In progress"),
  on_hold: t("On hold"),
  reopened: t("Reopened"),
};
const SLA_LABELS = { on_track: t("On track"), at_risk: t("At risk"), breached: t("Breached") };

function renderComplaints(board) {
  for (const [status, count] of Object.entries(board.by_status)) {
    const node = document.querySelector(`[data-status-count="${status}"]`);
    if (node) node.textContent = String(count);
  }
  for (const [state, count] of Object.entries(board.by_sla)) {
    const node = document.querySelector(`[data-sla="${state}"]`);
    if (node) node.textContent = String(count);
  }
  const items = board.complaints.slice(0, 12).map((c) =>
    el(
      "li",
      { class: c.sla_state === "breached" ? "breached" : c.sla_state === "at_risk" ? "at-risk" : "", dataset: { complaintId: c.id, status: c.status, slaState: c.sla_state } },
      el("span", { class: `badge ${c.sla_state === "breached" ? "bad" : c.sla_state === "at_risk" ? "warn" : "ok"}` }, SLA_LABELS[c.sla_state] || c.sla_state),
      el("span", { class: "grow" }, `${c.category} · ${c.unit_label || c.location || t("common area")}`),
      el("span", {}, STATUS_LABELS[c.status] || c.status),
      el("span", { class: "muted" }, t("due {time}", { time: when(c.resolution_due_at) })),
    ),
  );
  fill("complaint-list", items.length ? items : [el("li", { class: "empty" }, t("No open complaints"))]);
}

let complaintRequests = 0;
const loadComplaints = debounce(async () => {
  const ticket = ++complaintRequests;
  const board = await quietly(api("/api/dashboard/complaints"));
  if (board && ticket === complaintRequests) renderComplaints(board); // only the latest answer counts
}, 150);

// ------------------------------------------------------------------------------ the gate

const approvals = new Map(); // approval id -> record
let arrivals = [];
let overstays = [];
const RUNG_LABELS = {
  push: t("App and push sent"),
  message: t("SMS sent"),
  voice: t("Calling"),
  guard_prompt: t("Guard to call the flat"),
};
const DECISION_LABELS = {
  pending: t("Waiting"),
  approved: t("Approved"),
  denied: t("Denied"),
  leave_at_gate: t("Leave at gate"),
};

function renderApprovals() {
  const all = [...approvals.values()];
  const pending = all.filter((a) => a.status === "pending").sort((a, b) => Date.parse(a.requested_at) - Date.parse(b.requested_at));
  const answered = all
    .filter((a) => a.status !== "pending")
    .sort((a, b) => Date.parse(b.decided_at || 0) - Date.parse(a.decided_at || 0))
    .slice(0, Math.max(0, FEED_LIMIT - pending.length));
  const items = [...pending, ...answered].map((a) =>
    el(
      "li",
      { dataset: { approvalId: a.id, status: a.status, rung: a.rung, step: String(a.step) } },
      el("span", { class: `badge ${a.status === "pending" ? "" : a.status === "approved" ? "ok" : a.status === "denied" ? "bad" : "warn"}`.trim() }, DECISION_LABELS[a.status] || a.status),
      el("span", { class: "grow" }, el("strong", {}, a.visitor_name), ` · ${a.unit_label}`, a.gate ? ` · ${t("gate {gate}", { gate: a.gate })}` : ""),
      a.status === "pending"
        ? [el("span", { class: "muted" }, RUNG_LABELS[a.rung] || a.rung), el("span", { class: "timer", dataset: { since: a.requested_at } }, age(a.requested_at))]
        : el("span", { class: "muted" }, t("answered in {time}", { time: answeredIn(a.time_to_decision_ms) })),
    ),
  );
  fill("approvals", items.length ? items : [el("li", { class: "empty" }, t("Nobody waiting"))]);
}

function answeredIn(ms) {
  const s = Math.round((ms || 0) / 1000);
  return s < 60 ? t("{s} s", { s }) : t("{m} min {s} s", { m: Math.floor(s / 60), s: String(s % 60).padStart(2, "0") });
}

function renderVisits() {
  fill(
    "overstays",
    overstays.length
      ? overstays.map((v) =>
          el(
            "li",
            { class: "overstay", dataset: { visitId: v.visit_id } },
            el("span", { class: "badge bad" }, t("Overstay")),
            el("span", { class: "grow" }, el("strong", {}, v.name), ` · ${v.unit_label}`),
            el("span", { class: "timer", dataset: { since: v.checked_in_at } }, age(v.checked_in_at)),
          ),
        )
      : [el("li", { class: "empty" }, t("None"))],
  );
  fill(
    "arrivals",
    arrivals.length
      ? arrivals.slice(0, FEED_LIMIT).map((v) =>
          el(
            "li",
            { dataset: { visitId: v.visit_id, status: v.status } },
            el("span", { class: "muted" }, clock(v.checked_in_at)),
            el("span", { class: "grow" }, el("strong", {}, v.name), ` · ${v.unit_label}`, v.gate ? ` · ${t("gate {gate}", { gate: v.gate })}` : ""),
            el("span", { class: `badge ${v.status === "inside" ? "ok" : ""}`.trim() }, v.status === "inside" ? t("Inside") : t("Left")),
          ),
        )
      : [el("li", { class: "empty" }, t("None"))],
  );
}

// A snapshot may have been read before an event this page already applied (the request raced the
// event): keep what the events said when it is newer than the snapshot.
let gateRequests = 0;
const loadGate = debounce(async () => {
  const ticket = ++gateRequests;
  const askedAt = Date.now();
  const board = await quietly(api("/api/dashboard/gate"));
  if (!board || ticket !== gateRequests) return;
  const previous = new Map(approvals);
  approvals.clear();
  for (const a of board.approvals) {
    const known = previous.get(a.id);
    if (known && known.status !== "pending" && a.status === "pending") approvals.set(a.id, known);
    else if (known && known.status === "pending" && a.status === "pending" && known.step > a.step) approvals.set(a.id, known);
    else approvals.set(a.id, a);
  }
  for (const [id, known] of previous) {
    if (!approvals.has(id) && (known.eventAt || 0) >= askedAt - 1000 && known.status === "pending") approvals.set(id, known);
  }
  arrivals = board.arrivals;
  overstays = board.overstays;
  renderApprovals();
  renderVisits();
}, 150);

function onGateEvent(event) {
  const data = event.data;
  switch (event.type) {
    case "visitor.approval_requested":
      approvals.set(data.approval_id, {
        id: data.approval_id,
        visit_id: data.visit_id,
        unit_id: data.unit_id,
        unit_label: data.unit_label,
        visitor_name: data.name,
        kind: data.kind,
        gate: data.gate,
        status: "pending",
        rung: "push",
        step: 0,
        requested_at: data.requested_at,
        decided_at: null,
        time_to_decision_ms: null,
        eventAt: Date.now(),
      });
      renderApprovals();
      break;
    case "visitor.approval_escalated": {
      const a = approvals.get(data.approval_id);
      if (!a) return loadGate();
      if (data.step >= a.step) Object.assign(a, { rung: data.action, step: data.step });
      renderApprovals();
      break;
    }
    case "visitor.approval_resolved": {
      const a = approvals.get(data.approval_id);
      if (!a) return loadGate();
      Object.assign(a, { status: data.decision, decided_at: data.decided_at, decided_via: data.decided_via, time_to_decision_ms: data.time_to_decision_ms });
      renderApprovals();
      refreshCharts();
      break;
    }
    case "visitor.overstay":
      toast(t("Overstay: {name} ({unit})", { name: data.name, unit: data.unit_label }), "bad");
      loadGate();
      break;
    default:
      loadGate(); // arrived, departed: the snapshot has the unit labels and overstay limits
  }
}

// ------------------------------------------------------------------------------ presence

const consoles = new Map(); // connection id -> console

function renderPresence() {
  const byGate = new Map();
  for (const c of consoles.values()) {
    if (!byGate.has(c.gate)) byGate.set(c.gate, []);
    byGate.get(c.gate).push(c);
  }
  const gates = [...byGate.keys()].sort();
  fill(
    "presence",
    gates.length
      ? gates.map((gate) => {
          const list = byGate.get(gate).sort((a, b) => a.since - b.since);
          return el(
            "li",
            { dataset: { gate, count: String(list.length) } },
            el("span", { class: "badge ok" }, t("Online")),
            el("strong", { class: "grow" }, t("Gate {gate}", { gate })),
            el("span", { class: "gate-consoles" }, [...new Set(list.map((c) => (config.people || {})[c.person_id] || t("Guard")))].join(", ")),
            el("span", { class: "gate-consoles muted" }, list.length === 1 ? t("1 console, since {time}", { time: clock(list[0].since * 1000) }) : t("{n} consoles, since {time}", { n: list.length, time: clock(list[0].since * 1000) })),
          );
        })
      : [el("li", { class: "empty" }, t("No console online"))],
  );
}

function onPresenceSnapshot(message) {
  if (message.site_id && message.site_id !== config.site_id) return;
  consoles.clear();
  for (const c of message.consoles || []) consoles.set(c.connection_id, c);
  renderPresence();
}

function onPresenceChanged(data) {
  if (data.change === "joined") consoles.set(data.console.connection_id, data.console);
  else consoles.delete(data.console.connection_id);
  renderPresence();
}

// ------------------------------------------------------------------------------ availability

const resources = new Map(); // resource id -> state
const STATE_LABELS = { free: t("Free"), booked: t("Booked"), in_use: t("In use"), out_of_service: t("Out of service") };

function renderAvailability() {
  for (const kind of KINDS) {
    const tile = document.querySelector(`#availability [data-kind="${kind}"]`);
    if (!tile) continue;
    const all = [...resources.values()].filter((r) => r.category === kind);
    const free = all.filter((r) => r.state === "free").length;
    tile.dataset.free = String(free);
    tile.dataset.total = String(all.length);
    tile.querySelector("[data-role=free]").textContent = String(free);
    tile.querySelector("[data-role=total]").textContent = t("of {n}", { n: all.length });
  }
  const listed = [...resources.values()]
    .filter((r) => r.category === "ev_connector" || r.category === "parking_slot")
    .sort((a, b) => a.category.localeCompare(b.category) || a.code.localeCompare(b.code));
  fill(
    "availability-list",
    listed.slice(0, 20).map((r) =>
      el(
        "li",
        { dataset: { resourceId: r.resource_id, state: r.state, freeUntil: r.free_until || "" } },
        el("span", { class: "grow" }, r.code),
        el("span", { class: `badge ${r.state === "free" ? "ok" : r.state === "out_of_service" ? "bad" : "warn"}` }, STATE_LABELS[r.state] || r.state),
        r.state === "free" && r.free_until ? el("span", { class: "muted" }, t("until {time}", { time: clock(r.free_until) })) : null,
        r.state !== "free" && r.next_free_at ? el("span", { class: "muted" }, t("free at {time}", { time: clock(r.next_free_at) })) : null,
      ),
    ),
  );
}

function newer(a, b) {
  return !b || Date.parse(a.as_of) >= Date.parse(b.as_of);
}

const loadAvailability = debounce(async () => {
  const now = await quietly(api("/api/slots/availability"));
  if (!now) return;
  const previous = new Map(resources);
  resources.clear();
  for (const r of itemsOf(now.resources)) {
    const known = previous.get(r.resource_id);
    resources.set(r.resource_id, newer(r, known) ? r : known);
  }
  renderAvailability();
}, 100);

function onSlotsEvent(event) {
  if (event.type === "slot.availability_changed" && newer(event.data, resources.get(event.data.resource_id))) {
    resources.set(event.data.resource_id, event.data);
    renderAvailability();
  }
}

// ------------------------------------------------------------------------------ charts

const refreshCharts = debounce(async () => {
  const charts = await quietly(api("/api/dashboard/charts"));
  if (charts) drawCharts(charts);
}, 2000);

// ------------------------------------------------------------------------------ wiring

const maintenance = new MaintenanceBoard();
const announcements = new Announcements(document.getElementById("announcements"), { onFinal: () => refreshCharts() });
wireComposer(document.getElementById("announce-form"), announcements);

function onControlEvent(event) {
  if (operations.onEvent(event)) return;
  if (event.type.startsWith("complaint.")) {
    loadComplaints();
    if (event.type !== "complaint.note_added" && event.type !== "complaint.commented") refreshCharts();
  } else if (event.type.startsWith("visitor.")) onGateEvent(event);
  else if (event.type === "presence.changed") onPresenceChanged(event.data);
  else if (event.type === "announcement.progress") announcements.onProgress(event.data);
  else if (event.type.startsWith("billing.")) onBillingEvent(event);
  else if (event.type.startsWith("amc.")) maintenance.onEvent(event);
}

function reloadControl() {
  operations.reload();
  loadComplaints();
  maintenance.load();
  loadGate();
  quietly(announcements.load());
  refreshCharts();
  loadCollections();
}

operations.init();
const realtime = new ControlRealtime();
realtime.on(CONTROL, onControlEvent, reloadControl);
realtime.on(SLOTS, onSlotsEvent, loadAvailability);
realtime.onPresence(onPresenceSnapshot);
showConnection(realtime);
realtime.start();

reloadControl();
loadAvailability();
// The first chart draw should not wait for the debounce.
quietly(api("/api/dashboard/charts")).then((charts) => charts && drawCharts(charts));

// Running timers and the board's clock; SLA states and charts also move with time alone.
const boardClock = document.getElementById("board-clock");
setInterval(() => {
  for (const node of document.querySelectorAll(".timer[data-since]")) node.textContent = age(node.dataset.since);
  if (boardClock) boardClock.textContent = when(new Date());
}, 1000);
setInterval(loadComplaints, BOARD_REFRESH_MS);
setInterval(() => maintenance.load(), CHART_REFRESH_MS); // days late grow with the calendar
setInterval(refreshCharts, CHART_REFRESH_MS);
