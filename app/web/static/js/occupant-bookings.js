// Bookings: amenities, EV chargers and parking. Each resource shows whether it is free for the chosen
// start and length (the API's free start times for that day; nothing is computed here), and what it is
// doing now. site:{id}:slots tells when a resource changed (someone booked, cancelled, plugged in):
// that resource is asked again, so "Taken" appears without a reload. My bookings with cancel.
import { ApiError, allItems, api, itemsOf, newKey } from "./api.js";
import { t } from "./i18n.js";
import { el, fill, toast } from "./shell.js";
import { atSite, config, label, report, siteToday, timeAtSite } from "./occupant-common.js";

const resources = new Map(); // id -> ResourceView
// The resource a place's QR page asked to book (?book=<id>): marked, and scrolled to once.
const wanted = new URLSearchParams(location.search).get("book");
let shownWanted = false;
const free = new Map(); // id -> {starts: Set<ms>, state, error}
const pending = new Map(); // id -> in-flight refresh
let chosenStart = null; // ms since epoch, or null: the earliest free start
const CATEGORY_LABELS = { amenity: t("Amenity"), ev_connector: t("EV charger"), parking_slot: t("Parking"), valet: t("Valet") };
const BOOKING_STATUS = {
  pending: t("Waiting for approval"), confirmed: t("Confirmed"), checked_in: t("Checked in"), cancelled: t("Cancelled"),
  completed: t("Completed"), no_show: t("Not used"), rejected: t("Rejected"),
};
const CANCELLABLE = new Set(["pending", "confirmed"]);

export function init({ realtime }) {
  realtime.on(`site:${config.site_id}:slots`, onSlotEvent, () => loadResources().catch(report));
  realtime.onPrefix("user:", (event) => {
    if (event.type === "booking.changed") loadBookings().catch(report);
  });
  document.getElementById("slot-date").value = siteToday();
  const form = document.getElementById("slot-filter");
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", (event) => {
    if (event.target.id === "slot-time") {
      chosenStart = Number(event.target.value) || null;
      render();
    } else {
      chosenStart = null;
      loadResources().catch(report);
    }
  });
  document.getElementById("resources").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-book]");
    if (button) book(button.dataset.book, button);
  });
}

export async function load() {
  await Promise.all([loadResources(), loadBookings()]);
}

function query() {
  const date = document.getElementById("slot-date").value || siteToday();
  const duration = document.getElementById("slot-duration").value || "60";
  return `date=${encodeURIComponent(date)}&duration_minutes=${encodeURIComponent(duration)}`;
}

async function loadResources() {
  const category = document.getElementById("slot-category").value;
  const list = (await allItems(`/api/slots/resources${category ? `?category=${category}` : ""}`)).filter((r) => r.is_active !== false && r.category !== "valet");
  resources.clear();
  free.clear();
  for (const resource of list) resources.set(resource.id, resource);
  await Promise.all(list.map((resource) => refresh(resource.id, false)));
  render();
}

async function refresh(id, draw = true) {
  if (pending.has(id)) return pending.get(id);
  const job = (async () => {
    try {
      const answer = await api(`/api/slots/resources/${id}/availability?${query()}`);
      free.set(id, { starts: new Set(answer.starts.map((s) => Date.parse(s))), state: answer.state, error: null });
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) free.set(id, { starts: new Set(), state: null, error: error.fieldMessage("duration_minutes") || error.message });
      else if (error instanceof ApiError && error.status === 404) resources.delete(id);
      else throw error;
    } finally {
      pending.delete(id);
    }
    if (draw) render();
  })();
  pending.set(id, job);
  return job;
}

function onSlotEvent(event) {
  if (event.type !== "slot.availability_changed") return;
  const id = event.data.resource_id;
  if (resources.has(id)) refresh(id).catch(report);
  else if (!document.getElementById("slot-category").value || document.getElementById("slot-category").value === event.data.category) loadResources().catch(report);
}

function allStarts() {
  const starts = new Set();
  for (const entry of free.values()) for (const start of entry.starts) starts.add(start);
  return [...starts].sort((a, b) => a - b);
}

function nowText(state) {
  if (!state) return "";
  switch (state.state) {
    case "booked": return state.next_free_at ? t("Booked now, free from {time}", { time: timeAtSite(state.next_free_at) }) : t("Booked now");
    case "in_use": return state.live_status === "occupied" ? t("Occupied now") : t("In use now ({status})", { status: state.live_status });
    case "out_of_service": return t("Out of service");
    default: return state.free_until ? t("Free now until {time}", { time: timeAtSite(state.free_until) }) : t("Free now");
  }
}

function render() {
  const starts = allStarts();
  if (chosenStart === null && starts.length) chosenStart = starts[0];
  // The chosen start stays listed even once nothing is free then, so "Taken" shows instead of a jump.
  const options = chosenStart !== null && !starts.includes(chosenStart) ? [...starts, chosenStart].sort((a, b) => a - b) : starts;
  fill("slot-time", options.length
    ? options.map((ms) => el("option", { value: ms, selected: ms === chosenStart }, timeAtSite(new Date(ms).toISOString())))
    : [el("option", { value: "" }, t("Nothing free this day"))]);
  const duration = Number(document.getElementById("slot-duration").value || 60);
  const summary = document.getElementById("slot-summary");
  summary.textContent = chosenStart !== null
    ? t("Showing {start} to {end} on {date}", { start: timeAtSite(new Date(chosenStart).toISOString()), end: timeAtSite(new Date(chosenStart + duration * 60000).toISOString()), date: document.getElementById("slot-date").value })
    : "";
  const sorted = [...resources.values()].sort((a, b) => `${a.category}${a.code}`.localeCompare(`${b.category}${b.code}`));
  fill("resources", sorted.map((resource) => {
    const entry = free.get(resource.id) || { starts: new Set(), state: null, error: null };
    const isFree = chosenStart !== null && entry.starts.has(chosenStart);
    const facts = [CATEGORY_LABELS[resource.category] || resource.category, resource.code];
    if (resource.power_kw) facts.push(`${resource.power_kw} kW`);
    if (resource.connector_type) facts.push(resource.connector_type);
    if (resource.covered) facts.push(t("covered"));
    if (resource.rules && resource.rules.fee_minor) facts.push(`${(resource.rules.fee_minor / 100).toFixed(2)} ${resource.rules.currency}`);
    return el("li", { class: `resource ${isFree ? "free" : "taken"}${resource.id === wanted ? " wanted" : ""}`, dataset: { resourceId: resource.id, free: isFree ? "1" : "0", state: entry.state ? entry.state.state : "" } },
      el("div", { class: "row" },
        el("strong", { class: "grow" }, resource.name),
        el("span", { class: `badge ${isFree ? "ok" : "bad"}`, dataset: { role: "availability" } }, isFree ? t("Free") : t("Taken")),
      ),
      el("div", { class: "muted" }, facts.join(" · ")),
      el("div", { class: "muted" }, entry.error || nowText(entry.state)),
      el("button", { type: "button", class: "btn-primary", dataset: { book: resource.id }, disabled: !isFree, "aria-label": t("Book {name}", { name: resource.name }) }, t("Book")),
    );
  }));
  document.getElementById("resources-empty").hidden = resources.size > 0;
  if (wanted && !shownWanted && resources.has(wanted)) {
    shownWanted = true;
    document.querySelector(`[data-resource-id="${CSS.escape(wanted)}"]`)?.scrollIntoView({ block: "center" });
  }
}

async function book(id, button) {
  if (chosenStart === null) return;
  const duration = Number(document.getElementById("slot-duration").value || 60);
  const body = { starts_at: new Date(chosenStart).toISOString(), ends_at: new Date(chosenStart + duration * 60000).toISOString() };
  button.disabled = true;
  try {
    const made = await api(`/api/slots/resources/${id}/bookings`, { json: body, idempotencyKey: newKey() });
    toast(made.status === "pending" ? t("Requested: waiting for approval") : t("Booked"));
    await Promise.all([refresh(id), loadBookings()]);
  } catch (error) {
    report(error, t("Not booked"));
    await refresh(id).catch(report);
  }
}

async function loadBookings() {
  const list = itemsOf(await api("/api/slots/bookings?mine=true&limit=50"));
  fill("bookings", list.map((b) =>
    el("li", { dataset: { bookingId: b.id, status: b.status } },
      el("div", { class: "row" },
        el("strong", { class: "grow" }, resources.get(b.resource_id)?.name || b.resource_code),
        el("span", { class: `badge ${b.status === "confirmed" || b.status === "checked_in" ? "ok" : ""}` }, label(BOOKING_STATUS, b.status)),
      ),
      el("div", { class: "muted" }, `${atSite(b.starts_at)} – ${timeAtSite(b.ends_at)}`),
      CANCELLABLE.has(b.status)
        ? el("button", { type: "button", class: "btn-quiet", "aria-label": t("Cancel the booking of {name} at {time}", { name: resources.get(b.resource_id)?.name || b.resource_code, time: atSite(b.starts_at) }), onclick: (e) => cancel(b, e.currentTarget) }, t("Cancel"))
        : null,
    )));
  document.getElementById("bookings-empty").hidden = list.length > 0;
}

async function cancel(booking, button) {
  button.disabled = true;
  try {
    const result = await api(`/api/slots/bookings/${booking.id}/cancel`, { json: { reason: "" } });
    toast(result.free_cancellation || !result.booking.fee_minor ? t("Cancelled") : t("Cancelled (the fee still applies)"));
    await loadBookings();
    if (resources.has(booking.resource_id)) await refresh(booking.resource_id);
  } catch (error) {
    button.disabled = false;
    report(error, t("Not cancelled"));
  }
}
