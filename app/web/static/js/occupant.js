// The occupant app: seven sections in one page (Home, Visitors, Complaints, Bookings, Permits, Bills,
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
const sections = [feed, visitors, complaints, bookings, permits, bills, settings];
const ctx = { config, realtime };
for (const section of sections) section.init(ctx);

// ---- navigation: one panel at a time; every section is a tab of one tablist (WAI-ARIA tabs pattern:
// arrow keys, Home and End move between them). On a phone the bar holds the four used most and "More"
// opens the other three in a sheet above it; the More button then names the section it holds.
const nav = document.getElementById("occ-nav");
const more = document.getElementById("occ-more");
const sheet = document.getElementById("occ-extra");
const moreLabel = document.getElementById("occ-more-label");
const morePrefix = document.getElementById("occ-more-prefix");
const tabs = [...document.querySelectorAll('[role="tab"]')];
const inSheet = (tab) => sheet.contains(tab);
const sheetIsMenu = () => getComputedStyle(more).display !== "none"; // a phone: the sheet opens and closes

function openSheet(open) {
  nav.dataset.more = open ? "open" : "closed";
  more.setAttribute("aria-expanded", String(open));
}

function select(tab, focus = false) {
  for (const other of tabs) {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    other.tabIndex = chosen ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !chosen;
  }
  const held = inSheet(tab);
  more.classList.toggle("current", held);
  moreLabel.textContent = held ? tab.querySelector(".occ-label").textContent : moreLabel.dataset.more;
  morePrefix.hidden = !held;
  if (focus) {
    if (sheetIsMenu()) openSheet(held);
    tab.focus();
  }
  document.body.dataset.section = tab.dataset.tab;
  // The address names the open section, so a reload or a shared link opens it again.
  const url = new URL(location.href);
  if (url.searchParams.get("section") !== tab.dataset.tab) {
    url.searchParams.set("section", tab.dataset.tab);
    history.replaceState(history.state, "", url);
  }
}

for (const tab of tabs) {
  tab.addEventListener("click", () => {
    select(tab);
    if (inSheet(tab) && sheetIsMenu()) {
      openSheet(false);
      more.focus(); // the tab just chosen is in the closed sheet; More now names it
    }
  });
  tab.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(tab);
    let next = null;
    if (event.key === "ArrowRight" || (event.key === "ArrowDown" && inSheet(tab))) next = tabs[(index + 1) % tabs.length];
    else if (event.key === "ArrowLeft" || (event.key === "ArrowUp" && inSheet(tab))) next = tabs[(index - 1 + tabs.length) % tabs.length];
    else if (event.key === "Home") next = tabs[0];
    else if (event.key === "End") next = tabs[tabs.length - 1];
    if (next) {
      event.preventDefault();
      select(next, true);
    }
  });
}

more.addEventListener("click", () => {
  const open = more.getAttribute("aria-expanded") !== "true";
  openSheet(open);
  if (open) (tabs.find((tab) => inSheet(tab) && tab.tabIndex === 0) || sheet.querySelector('[role="tab"]')).focus();
});
more.addEventListener("keydown", (event) => {
  if (event.key === "ArrowUp" && more.getAttribute("aria-expanded") !== "true") {
    event.preventDefault();
    more.click();
  }
});
nav.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && nav.dataset.more === "open") {
    openSheet(false);
    more.focus();
  }
});
// The sheet closes when the person turns elsewhere: a tap outside the bar, or focus leaving it.
document.addEventListener("click", (event) => {
  if (nav.dataset.more === "open" && !nav.contains(event.target)) openSheet(false);
});
nav.addEventListener("focusout", (event) => {
  if (nav.dataset.more === "open" && event.relatedTarget && !nav.contains(event.relatedTarget)) openSheet(false);
});

// A link may open any section: /app?section=bills (where the payment page sends the payer back).
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
