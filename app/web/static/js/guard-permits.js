// The guard console's permits: who may come in under a work permit today, and the check at the gate.
// The guard types what the vendor gives (a permit number, their mobile or their vehicle's plate); the hub
// recognises them and answers valid (with the permit shown: where, when, who approved, who is named) or
// refused with the reason. Letting someone in records the entry; every rule (window, daily hours,
// revocation) is the server's. Live: permits approved or revoked, entries and refusals (site gate topic).
import { allItems, api, ApiError, NetworkError } from "./api.js";
import { t } from "./i18n.js";
import { el, fill, toast, when } from "./shell.js";

let gateName = "main";
const today = new Map(); // permit id -> GatePermit

const KIND_NAMES = {
  fit_out: t("Fit-out / renovation"),
  hot_work: t("Hot work"),
  move_in: t("Move-in"),
  move_out: t("Move-out"),
  vendor_access: t("Vendor access"),
  working_at_height: t("Working at height"),
};

function refusalText(answer) {
  const permit = answer.permit;
  const ref = permit ? permit.reference : "";
  switch (answer.reason) {
    case "not_yet_valid":
      return t("Permit {ref} is not valid yet: it starts {start}.", { ref, start: when(permit.valid_from) });
    case "expired":
      return t("Permit {ref} has expired: it ended {end}.", { ref, end: when(permit.valid_until) });
    case "outside_hours":
      return t("Permit {ref} allows entry only {from}-{to}.", { ref, from: permit.daily_start, to: permit.daily_end });
    case "not_approved":
      return t("Permit {ref} is not approved yet.", { ref });
    case "revoked":
      return t("Permit {ref} was revoked by the FM team.", { ref });
    case "cancelled":
      return t("Permit {ref} was cancelled by its applicant.", { ref });
    default:
      return t("No permit names this person or vehicle.");
  }
}

/** What the guard typed, as the API's field: a permit number, a mobile or a plate. */
export function queryOf(text) {
  const value = text.trim();
  if (/^p-?[a-z0-9]{4,8}$/i.test(value)) {
    const bare = value.replace(/^p-?/i, "").toUpperCase();
    return { reference: `P-${bare}` };
  }
  const digits = value.replace(/[^0-9]/g, "");
  if (digits.length >= 8 && digits.length >= value.replace(/[\s+()-]/g, "").length - 1) return { phone: value };
  return { plate: value };
}

function entrantRow(permit, entrant, admits) {
  const name = entrant.kind === "vehicle" ? `${entrant.plate}${entrant.name ? ` (${entrant.name})` : ""}` : entrant.name;
  return el(
    "li",
    { class: "row entrant", dataset: { entrantId: entrant.id, inside: entrant.inside ? "1" : "0" } },
    el("span", { class: "grow" }, name, entrant.phone_hint ? ` · ${entrant.phone_hint}` : ""),
    entrant.inside ? el("span", { class: "badge ok" }, t("Inside")) : null,
    admits && !entrant.inside
      ? el(
          "button",
          {
            type: "button",
            class: "btn-ok",
            onclick: () => letIn(permit, entrant),
            "aria-label": t("Let {name} in", { name }),
          },
          t("Let in"),
        )
      : null,
  );
}

function permitCard(permit, admits) {
  const where = permit.unit_label || permit.location || "";
  return el(
    "div",
    { class: "permit-card", dataset: { permitId: permit.id, reference: permit.reference } },
    el("p", { class: "result-line" }, el("strong", {}, permit.reference), ` · ${KIND_NAMES[permit.kind] || permit.type_name}`),
    el("p", { class: "result-line" }, permit.title, where ? ` · ${where}` : ""),
    el(
      "p",
      { class: "result-line" },
      t("Valid {start} to {end}", { start: when(permit.valid_from), end: when(permit.valid_until) }),
      permit.daily_start ? ` · ${t("daily {from}-{to}", { from: permit.daily_start, to: permit.daily_end })}` : "",
    ),
    permit.approvals.length
      ? el(
          "p",
          { class: "muted" },
          t("Approved by {who}", { who: permit.approvals.map((a) => `${a.by_name || "?"} (${a.label})`).join(", ") }),
        )
      : null,
    permit.applicant_name ? el("p", { class: "muted" }, t("Applied for by {name}", { name: permit.applicant_name })) : null,
    el("ul", { class: "list entrants" }, [...permit.people, ...permit.vehicles].map((e) => entrantRow(permit, e, admits))),
  );
}

function showAnswer(answer) {
  const box = document.getElementById("permit-result");
  const admits = answer.outcome !== "refused";
  const title =
    answer.outcome === "checked_in" ? t("Let in under the permit") : admits ? t("Valid permit") : t("Not valid");
  fill(box, [
    el(
      "div",
      { class: `result ${admits ? "result-ok" : "result-bad"}`, dataset: { outcome: answer.outcome, reason: answer.reason || "" } },
      el("p", { class: "result-title" }, title),
      admits ? null : el("p", { class: "result-line", dataset: { role: "reason" } }, refusalText(answer)),
      answer.permit ? permitCard(answer.permit, admits) : null,
    ),
  ]);
}

async function check(query) {
  const box = document.getElementById("permit-result");
  fill(box, [el("div", { class: "result result-info" }, el("p", { class: "result-title" }, t("Checking…")))]);
  try {
    const answer = await api("/api/permits/gate/check", { json: { ...query, gate: gateName } });
    showAnswer(answer);
  } catch (error) {
    const message =
      error instanceof NetworkError
        ? t("A permit can only be checked with the hub. Try again when the connection is back.")
        : error instanceof ApiError
          ? error.message
          : String(error);
    fill(box, [el("div", { class: "result result-bad" }, el("p", { class: "result-title" }, t("Not valid")), el("p", { class: "result-line" }, message))]);
  }
}

async function letIn(permit, entrant) {
  try {
    const answer = await api("/api/permits/gate/check", {
      json: { reference: permit.reference, entrant_id: entrant.id, check_in: true, gate: gateName },
    });
    showAnswer(answer);
    if (answer.outcome === "checked_in") toast(t("Let in: {name}", { name: entrant.name || entrant.plate }));
    load();
  } catch (error) {
    toast(error instanceof NetworkError ? t("Offline: try again when the connection is back.") : error.message, "bad");
  }
}

function renderToday() {
  const items = [...today.values()].sort((a, b) => String(a.valid_from).localeCompare(String(b.valid_from)));
  document.getElementById("permits-count").textContent = String(items.length);
  document.getElementById("permits-empty").hidden = items.length > 0;
  fill(
    "permits-today",
    items.map((permit) =>
      el(
        "li",
        { class: "permit", dataset: { permitId: permit.id } },
        el(
          "div",
          { class: "row" },
          el("strong", { class: "grow" }, `${permit.reference} · ${KIND_NAMES[permit.kind] || permit.type_name}`),
          permit.inside ? el("span", { class: "badge ok" }, t("{n} inside", { n: permit.inside })) : null,
        ),
        el("p", { class: "muted" }, [permit.unit_label || permit.location, permit.title].filter(Boolean).join(" · ")),
        el(
          "p",
          { class: "muted" },
          [...permit.people.map((p) => p.name), ...permit.vehicles.map((v) => v.plate)].join(", "),
        ),
      ),
    ),
  );
}

export async function load() {
  const items = await allItems("/api/permits/gate/today");
  today.clear();
  for (const permit of items) today.set(permit.id, permit);
  renderToday();
}

let timer = null;
function loadSoon() {
  clearTimeout(timer);
  timer = setTimeout(() => load().catch(() => {}), 200);
}

export const HANDLERS = {
  "permit.changed": () => loadSoon(),
  "permit.entered": () => loadSoon(),
  "permit.left": () => loadSoon(),
  "permit.gate_refused": () => {},
};

export function init(config) {
  gateName = config.gate || "main";
  const form = document.getElementById("permit-form");
  const input = document.getElementById("permit-query");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value.trim()) {
      input.focus();
      return;
    }
    check(queryOf(input.value));
  });
}
