// The occupant app: seven sections in one page (Home, Visitors, Complaints, Permits, Bookings, Bills,
// Settings), each filled from the API and kept live over /ws. Each section is a module with init(ctx) and load().
import { Realtime } from "./realtime.js";
import { showConnection } from "./shell.js";
import { config, report } from "./occupant-common.js";
import * as feed from "./occupant-feed.js";
import * as visitors from "./occupant-visitors.js";
import * as complaints from "./occupant-complaints.js";
import * as bookings from "./occupant-bookings.js";
import * as permits from "./occupant-permits.js";
import * as bills from "./occupant-bills.js";
import * as settings from "./occupant-settings.js";

const realtime = new Realtime();
showConnection(realtime);
const sections = [feed, visitors, complaints, permits, bookings, bills, settings];
const ctx = { config, realtime };
for (const section of sections) section.init(ctx);

// ---- tabs: one panel at a time; arrow keys move between tabs (WAI-ARIA tabs pattern)
const tabs = [...document.querySelectorAll('[role="tab"]')];
function select(tab, focus = false) {
  for (const other of tabs) {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    other.tabIndex = chosen ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !chosen;
  }
  if (focus) tab.focus();
  document.body.dataset.section = tab.dataset.tab;
}
for (const tab of tabs) {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(tab);
    let next = null;
    if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
    else if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
    else if (event.key === "Home") next = tabs[0];
    else if (event.key === "End") next = tabs[tabs.length - 1];
    if (next) {
      event.preventDefault();
      select(next, true);
    }
  });
}
// A link may open a section: /app?section=bills (where the payment page sends the payer back).
const asked = new URLSearchParams(location.search).get("section");
const askedTab = tabs.find((candidate) => candidate.dataset.tab === asked);
if (askedTab) select(askedTab);
document.addEventListener("occupant:show", (event) => {
  const tab = tabs.find((candidate) => candidate.dataset.tab === event.detail);
  if (tab) select(tab);
});
// "Book it" on a place's public page (its QR code) lands here with ?book=<resource id>: open Bookings.
if (new URLSearchParams(location.search).get("book")) select(tabs.find((tab) => tab.dataset.tab === "bookings") || tabs[0]);

// ---- first load once the live connection is up, so nothing published in between is missed
// (later drops resume from the last seq per topic; a resync refetches that section).
let loaded = false;
function loadAll() {
  if (loaded) return;
  loaded = true;
  for (const section of sections) section.load().catch((error) => report(error));
}
realtime.onStatus((state) => {
  if (state === "online") loadAll();
});
setTimeout(loadAll, 4000); // offline at start: show what the API has anyway
realtime.start();
