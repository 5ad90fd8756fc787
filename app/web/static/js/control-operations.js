// The control room's operations boards: the permit queue (what awaits this FM member's decision, with
// approve, send back and reject), today's staff attendance (not arrived and absent first, late and absent
// alerts as they fire), and the monthly sheet of one person with its CSV. Live from site:{id}:control
// (permit.changed, attendance.*); a resync reloads both boards.
import { allItems, api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { clock, el, fill, toast, when } from "./shell.js";

const STATE_LABELS = {
  upcoming: t("Due later"),
  due: t("Due now"),
  present: t("On time"),
  late: t("Came late"),
  not_arrived: t("Not arrived"),
  absent: t("Absent"),
  off: t("Off duty"),
};
const STATE_BADGE = { absent: "bad", not_arrived: "bad", late: "warn", present: "ok", due: "info", upcoming: "", off: "" };
const DAY_STATUS = {
  present: t("Present"),
  late: t("Late"),
  absent: t("Absent"),
  upcoming: t("To come"),
  off: t("Off"),
  extra: t("Extra day"),
};
const MAX_ALERTS = 20;

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

// ------------------------------------------------------------------------------ the permit queue

async function decide(permit, decision, reason, dues) {
  try {
    await api(`/api/permits/${permit.id}/decision`, {
      json: { decision, reason: reason || undefined, dues_confirmed: dues || undefined, version: permit.version },
    });
    toast(
      decision === "approve"
        ? t("Permit {ref} approved", { ref: permit.reference })
        : decision === "reject"
          ? t("Permit {ref} rejected", { ref: permit.reference })
          : t("Permit {ref} sent back", { ref: permit.reference }),
    );
  } catch (error) {
    toast(error instanceof ApiError ? error.fieldMessage?.("reason") || error.fieldMessage?.("dues_confirmed") || error.message : String(error), "bad");
  }
  loadQueue();
}

function queueItem(permit) {
  const reasonId = `reason-${permit.id}`;
  const duesId = `dues-${permit.id}`;
  const last = permit.chain.length > 0 && permit.chain[permit.chain.length - 1].state === "awaiting";
  const needsDues = permit.requires_dues_cleared && last;
  const reason = () => document.getElementById(reasonId).value.trim();
  return el(
    "li",
    { class: "permit", dataset: { permitId: permit.id, status: permit.status } },
    el(
      "div",
      { class: "row grow" },
      el("strong", { class: "grow" }, `${permit.reference} · ${permit.type_name}`),
      el("span", { class: "badge info" }, t("Step: {label}", { label: permit.awaiting || "" })),
    ),
    el(
      "p",
      { class: "grow muted" },
      [permit.unit_label || permit.location, permit.title, permit.applicant_name].filter(Boolean).join(" · "),
      ` · ${when(permit.valid_from)} – ${when(permit.valid_until)}`,
    ),
    permit.attachments.length
      ? el(
          "p",
          { class: "grow" },
          permit.attachments.map((a) =>
            el("a", { href: `/api/permits/${permit.id}/attachments/${a.id}`, download: "", class: "attachment" }, a.slot),
          ),
        )
      : null,
    el(
      "div",
      { class: "row grow decide" },
      el("label", { for: reasonId, class: "sr-only" }, t("Reason for {ref}", { ref: permit.reference })),
      el("input", { id: reasonId, class: "grow", maxlength: 2000, placeholder: t("Reason (to send back or reject)"), autocomplete: "off" }),
      needsDues
        ? el(
            "label",
            { class: "check" },
            el("input", { type: "checkbox", id: duesId }),
            ` ${t("Dues checked by hand (when billing cannot tell)")}`,
          )
        : null,
      el(
        "button",
        { type: "button", class: "btn-ok", onclick: () => decide(permit, "approve", reason(), needsDues && document.getElementById(duesId).checked) },
        t("Approve"),
      ),
      el("button", { type: "button", class: "btn", onclick: () => decide(permit, "send_back", reason()) }, t("Send back")),
      el("button", { type: "button", class: "btn-bad", onclick: () => decide(permit, "reject", reason()) }, t("Reject")),
    ),
  );
}

const loadQueue = debounce(async () => {
  try {
    const mine = await allItems("/api/permits?awaiting_me=true");
    const pending = await api("/api/permits?status=pending&limit=1");
    document.getElementById("permit-pending-count").textContent = String(pending.total);
    fill("permit-queue", mine.length ? mine.map(queueItem) : [el("li", { class: "empty" }, t("Nothing awaits your decision."))]);
  } catch (error) {
    if (!(error instanceof ApiError)) return;
    toast(error.message, "bad");
  }
}, 150);

// ------------------------------------------------------------------------------ attendance

const alerts = [];

function renderAlerts() {
  fill(
    "attendance-alerts",
    alerts.length
      ? alerts.map((a) =>
          el("li", { class: a.kind === "absent" ? "breached" : "at-risk", dataset: { kind: a.kind } }, a.kind === "absent" ? t("{name} is absent", { name: a.name }) : t("{name} is late", { name: a.name }), el("span", { class: "muted" }, ` · ${a.shift_start} · ${clock(a.at)}`)),
        )
      : [el("li", { class: "empty" }, t("No late or absent staff."))],
  );
}

const loadBoard = debounce(async () => {
  try {
    const rows = await allItems("/api/attendance/board");
    fill(
      "attendance-board",
      rows.length
        ? rows.map((row) =>
            el(
              "li",
              { dataset: { staffId: row.staff_id, state: row.state, inside: row.inside ? "1" : "0" } },
              el("span", { class: "grow" }, el("strong", {}, row.name), ` · ${row.duty || t("No shift today")}`),
              el("span", { class: `badge ${STATE_BADGE[row.state] || ""}` }, STATE_LABELS[row.state] || row.state),
              row.minutes_late ? el("span", { class: "muted" }, t("{n} min late", { n: row.minutes_late })) : null,
              row.inside ? el("span", { class: "badge ok" }, t("In")) : null,
            ),
          )
        : [el("li", { class: "empty" }, t("No staff on the list."))],
    );
    const select = document.getElementById("sheet-staff");
    const keep = select.value;
    const people = new Map(rows.map((row) => [row.staff_id, row.name]));
    fill(select, [...people].map(([id, name]) => el("option", { value: id, selected: id === keep }, name)));
    if (!alerts.length) {
      for (const row of rows) for (const kind of row.alerts) alerts.push({ name: row.name, kind, shift_start: row.duty || "", at: row.start_at });
      renderAlerts();
    }
  } catch (error) {
    if (error instanceof ApiError) toast(error.message, "bad");
  }
}, 150);

function hours(minutes) {
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}`;
}

const SOURCES = {
  gate: t("at the gate"),
  phone: t("from the phone"),
  daily_help_pass: t("on the daily-help pass"),
  correction: t("added by a supervisor"),
};

function kindWord(kind) {
  return kind === "in" ? t("check-in") : t("check-out");
}

function correctionReason() {
  const input = document.getElementById("correction-reason");
  const reason = input.value.trim();
  if (reason.length < 3) {
    input.focus();
    toast(t("Say why: every correction keeps its reason."), "bad");
    return null;
  }
  return reason;
}

async function correct(staffId, body) {
  try {
    await api(`/api/attendance/staff/${staffId}/corrections`, { json: body });
    document.getElementById("correction-reason").value = "";
    await showSheet();
  } catch (error) {
    toast(error instanceof ApiError ? error.message : String(error), "bad");
  }
}

async function showPunches(staffId, month) {
  const punches = await allItems(`/api/attendance/staff/${staffId}/punches?month=${month}`);
  fill(
    "sheet-punches",
    punches.length
      ? punches.map((punch) =>
          el(
            "li",
            { dataset: { punchId: punch.id, source: punch.source, voided: punch.voided_at ? "1" : "0" } },
            el(
              punch.voided_at ? "s" : "span",
              { class: "grow" },
              `${when(punch.at)} · ${punch.kind === "in" ? t("Check-in") : t("Check-out")} ${SOURCES[punch.source] || punch.source}`,
            ),
            punch.correction_reason ? el("span", { class: "muted" }, punch.correction_reason) : null,
            punch.voided_at
              ? null
              : el(
                  "button",
                  {
                    type: "button",
                    class: "btn",
                    "aria-label": t("Void the {what} of {time}", { what: kindWord(punch.kind), time: when(punch.at) }),
                    onclick: () => {
                      const reason = correctionReason();
                      if (reason) correct(staffId, { action: "void", punch_id: punch.id, reason });
                    },
                  },
                  t("Void"),
                ),
          ),
        )
      : [el("li", { class: "empty" }, t("No check-ins this month."))],
  );
  document.getElementById("corrections").hidden = false;
}

async function showSheet(event) {
  event?.preventDefault();
  const staffId = document.getElementById("sheet-staff").value;
  const month = document.getElementById("sheet-month").value;
  if (!staffId || !month) return;
  try {
    const sheet = await api(`/api/attendance/staff/${staffId}/sheet?month=${month}`);
    const link = document.getElementById("sheet-csv");
    link.href = `/api/attendance/staff/${staffId}/sheet.csv?month=${month}`;
    link.hidden = false;
    const totals = sheet.totals;
    document.getElementById("sheet-totals").textContent = t(
      "{present} present, {late} late, {absent} absent; {hours} h worked",
      { present: totals.present, late: totals.late, absent: totals.absent, hours: hours(totals.worked_minutes) },
    );
    fill(
      "sheet-rows",
      sheet.days.map((day) =>
        el(
          "tr",
          { dataset: { date: day.date, status: day.status } },
          el("td", {}, day.date),
          el("td", {}, day.duties.join(", ")),
          el("td", {}, DAY_STATUS[day.status] || day.status),
          el("td", { class: "num" }, day.first_in ? clock(day.first_in) : ""),
          el("td", { class: "num" }, day.last_out ? clock(day.last_out) : ""),
          el("td", { class: "num" }, hours(day.worked_minutes)),
          el("td", { class: "num" }, day.late_minutes || ""),
          el("td", {}, day.unmatched.join("; "), day.corrections ? ` ${t("{n} corrected", { n: day.corrections })}` : ""),
        ),
      ),
    );
    document.getElementById("sheet-table").hidden = false;
    await showPunches(staffId, month);
  } catch (error) {
    toast(error instanceof ApiError ? error.message : String(error), "bad");
  }
}

// ------------------------------------------------------------------------------ wiring

export function onEvent(event) {
  if (event.type === "permit.changed") {
    loadQueue();
    return true;
  }
  if (event.type === "attendance.late" || event.type === "attendance.absent") {
    alerts.unshift({ ...event.data, kind: event.type === "attendance.late" ? "late" : "absent" });
    alerts.splice(MAX_ALERTS);
    renderAlerts();
    loadBoard();
    return true;
  }
  if (event.type.startsWith("attendance.")) {
    loadBoard();
    return true;
  }
  return false;
}

export function reload() {
  loadQueue();
  loadBoard();
}

export function init() {
  const month = document.getElementById("sheet-month");
  if (!month.value) {
    const now = new Date();
    month.value = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
  }
  document.getElementById("sheet-form").addEventListener("submit", showSheet);
  document.getElementById("correction-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const staffId = document.getElementById("sheet-staff").value;
    const at = document.getElementById("correction-at").value;
    const reason = correctionReason();
    if (!staffId || !reason) return;
    if (!at) {
      document.getElementById("correction-at").focus();
      return;
    }
    correct(staffId, { action: "add", kind: document.getElementById("correction-kind").value, at: new Date(at).toISOString(), reason });
  });
  renderAlerts();
  // States move with the clock (due -> not arrived) between events.
  setInterval(loadBoard, 60000);
}
