// The control room's maintenance panel: overdue service visits and contracts about to end. It starts from
// GET /api/amc/board and follows site:{id}:control: `amc.visit_overdue` adds the visit at once (keyed by
// its id, so a repeat changes nothing), `amc.board_changed` (a visit recorded, a contract added) refetches.
import { api, ApiError, NetworkError } from "./api.js";
import { t } from "./i18n.js";
import { el, fill } from "./shell.js";

export class MaintenanceBoard {
  constructor() {
    this.overdue = new Map(); // visit id -> BoardVisit
    this.expiring = [];
    this.dueSoon = 0;
    this.ticket = 0;
  }

  async load() {
    const ticket = ++this.ticket;
    let board;
    try {
      board = await api("/api/amc/board");
    } catch (error) {
      if (error instanceof NetworkError || error instanceof ApiError) return;
      throw error;
    }
    if (ticket !== this.ticket) return; // only the latest answer counts
    this.overdue = new Map(board.overdue.map((visit) => [visit.visit_id, visit]));
    this.expiring = board.expiring;
    this.dueSoon = board.due_soon.length;
    this.render();
  }

  onEvent(event) {
    if (event.type === "amc.visit_overdue") {
      this.overdue.set(event.data.visit_id, event.data);
      this.render();
    } else if (event.type === "amc.board_changed") {
      this.load();
    }
  }

  render() {
    const overdue = [...this.overdue.values()].sort((a, b) => b.days_late - a.days_late);
    document.getElementById("amc-overdue-count").textContent = String(overdue.length);
    document.getElementById("amc-due-count").textContent = String(this.dueSoon);
    document.getElementById("amc-expiring-count").textContent = String(this.expiring.length);
    fill("amc-overdue", overdue.length
      ? overdue.slice(0, 10).map((visit) => el("li", { class: "breached", dataset: { visitId: visit.visit_id } },
        el("span", { class: "badge bad" }, t("{days} days late", { days: visit.days_late })),
        el("a", { class: "grow", href: `/control/assets/${visit.asset_id}` }, `${visit.asset_name} (${visit.asset_code})`),
        el("span", { class: "muted" }, `${visit.vendor} · ${visit.due_on}`)))
      : [el("li", { class: "empty" }, t("No overdue visits"))]);
    fill("amc-expiring", this.expiring.slice(0, 5).map((contract) => el("li", { dataset: { contractId: contract.contract_id } },
      el("a", { class: "grow", href: `/control/assets/${contract.asset_id}` }, `${contract.asset_name} (${contract.asset_code})`),
      el("span", { class: "muted" }, t("{vendor} ends in {days} days", { vendor: contract.vendor, days: contract.days_left })))));
  }
}
