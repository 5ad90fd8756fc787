// The guard console's staff attendance: today's staff (from the attendance board), who is in, and one
// tap to check someone in or out at the gate. The time recorded is the hub's, when the tap reaches it,
// so a tap is not queued while offline (a check-in sent an hour late would say the wrong time).
import { allItems, api, NetworkError } from "./api.js";
import { t } from "./i18n.js";
import { clock, el, fill, toast } from "./shell.js";

let gateName = "main";
let rows = [];

const STATES = {
  upcoming: t("Due later"),
  due: t("Due now"),
  present: t("On time"),
  late: t("Came late"),
  not_arrived: t("Not arrived"),
  absent: t("Absent"),
  off: t("Off duty"),
};
const CATEGORIES = {
  guard: t("Guard"),
  technician: t("Technician"),
  housekeeping: t("Housekeeping"),
  daily_help: t("Daily help"),
  other: t("Other staff"),
};

async function punch(row, kind) {
  try {
    await api(`/api/attendance/staff/${row.staff_id}/punch`, { json: { kind, gate: gateName } });
    toast(kind === "in" ? t("{name} checked in", { name: row.name }) : t("{name} checked out", { name: row.name }));
    await load();
  } catch (error) {
    toast(error instanceof NetworkError ? t("Offline: try again when the connection is back.") : error.message, "bad");
  }
}

function render() {
  const filter = (document.getElementById("staff-filter").value || "").trim().toLowerCase();
  // One line per person: the board has one row per duty; the first (most urgent) one speaks for them.
  const people = new Map();
  for (const row of rows) if (!people.has(row.staff_id)) people.set(row.staff_id, row);
  const shown = [...people.values()].filter((row) => !filter || row.name.toLowerCase().includes(filter));
  document.getElementById("staff-empty").hidden = shown.length > 0;
  fill(
    "staff-list",
    shown.map((row) =>
      el(
        "li",
        { class: `staff state-${row.state}`, dataset: { staffId: row.staff_id, state: row.state, inside: row.inside ? "1" : "0" } },
        el(
          "div",
          { class: "row" },
          el("strong", { class: "grow" }, row.name),
          el("span", { class: "muted" }, CATEGORIES[row.category] || row.category),
        ),
        el(
          "div",
          { class: "row" },
          el(
            "span",
            { class: "grow" },
            row.duty || t("No shift today"),
            " · ",
            el("span", { dataset: { role: "state" } }, STATES[row.state] || row.state),
            row.inside && row.last_punch_at ? ` · ${t("in since {time}", { time: clock(row.last_punch_at) })}` : "",
          ),
          el(
            "button",
            {
              type: "button",
              class: row.inside ? "btn" : "btn-ok",
              onclick: () => punch(row, row.inside ? "out" : "in"),
              "aria-label": row.inside ? t("Check {name} out", { name: row.name }) : t("Check {name} in", { name: row.name }),
            },
            row.inside ? t("Check out") : t("Check in"),
          ),
        ),
      ),
    ),
  );
}

export async function load() {
  rows = await allItems("/api/attendance/board");
  render();
}

let timer = null;
function loadSoon() {
  clearTimeout(timer);
  timer = setTimeout(() => load().catch(() => {}), 200);
}

export const HANDLERS = {
  "attendance.punched": () => loadSoon(),
};

export function init(config) {
  gateName = config.gate || "main";
  document.getElementById("staff-filter").addEventListener("input", render);
}
