// Settings: consent per channel and category (each toggle is one recorded change), quiet hours in my
// time zone, snooze, the consent history, and my data (view, export download, erasure request).
import { allItems, api, itemsOf } from "./api.js";
import { t } from "./i18n.js";
import { el, fill, toast } from "./shell.js";
import { CATEGORY_NAMES, CHANNEL_NAMES, atSite, config, label, report, sameOrigin } from "./occupant-common.js";

let dnd = null;
const SOURCE_NAMES = { app: t("in the app"), web: t("on the web"), keyword: t("by SMS keyword"), admin: t("by the FM team"), import: t("imported"), provider: t("by the provider") };
const EXPORT_STATUS = { pending: t("Being prepared"), running: t("Being prepared"), ready: t("Ready"), expired: t("Expired"), failed: t("Failed") };
const REQUEST_STATUS = {
  open: t("Received"), acknowledged: t("Acknowledged"), approved: t("Approved"), erasing: t("Erasing"),
  completed: t("Completed"), rejected: t("Rejected"),
};
const REQUEST_KINDS = { access: t("Access"), correction: t("Correction"), erasure: t("Erasure"), objection: t("Objection") };

export function init({ realtime }) {
  realtime.onPrefix("user:", (event) => {
    if (event.type === "privacy.export.ready") loadExports().catch(report);
    else if (event.type === "privacy.request.updated") loadRequests().catch(report);
  });
  document.getElementById("prefs").addEventListener("change", onToggle);
  document.getElementById("dnd-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveDnd(false);
  });
  document.getElementById("dnd-clear").addEventListener("click", () => saveDnd(true));
  document.getElementById("snooze").addEventListener("click", () => snooze(Number(document.getElementById("snooze-minutes").value)));
  document.getElementById("snooze-stop").addEventListener("click", () => snooze(0));
  document.getElementById("export-request").addEventListener("click", requestExport);
  document.getElementById("erasure-form").addEventListener("submit", requestErasure);
}

export async function load() {
  await Promise.all([loadPrefs(), loadDnd(), loadHistory(), loadMyData(), loadExports(), loadRequests()]);
}

// ------------------------------------------------------------------ consent per channel and category

async function loadPrefs() {
  renderPrefs(await allItems("/api/me/notification-preferences"));
}

function renderPrefs(list) {
  const byCategory = new Map();
  for (const pref of list) {
    if (!byCategory.has(pref.category)) byCategory.set(pref.category, []);
    byCategory.get(pref.category).push(pref);
  }
  const order = config.categories || [...byCategory.keys()];
  fill("prefs", order.filter((category) => byCategory.has(category)).map((category) =>
    el("fieldset", { class: "pref-group" },
      el("legend", {}, label(CATEGORY_NAMES, category)),
      el("div", { class: "row" }, byCategory.get(category).map((pref) => {
        const id = `pref-${pref.channel}-${pref.category}`;
        return el("label", { class: "check pref", for: id },
          el("input", { type: "checkbox", id, checked: pref.enabled, dataset: { channel: pref.channel, category: pref.category } }),
          " ", label(CHANNEL_NAMES, pref.channel));
      })),
    )));
}

async function onToggle(event) {
  const input = event.target;
  if (!input.dataset.channel) return;
  input.disabled = true;
  try {
    const list = await api("/api/me/notification-preferences", {
      method: "PUT",
      json: { preferences: [{ channel: input.dataset.channel, category: input.dataset.category, enabled: input.checked }], source: "app" },
    });
    renderPrefs(itemsOf(list));
    document.getElementById(input.id)?.focus();
    await loadHistory();
  } catch (error) {
    input.checked = !input.checked;
    input.disabled = false;
    report(error, t("Not saved"));
  }
}

async function loadHistory() {
  const list = itemsOf(await api("/api/me/consent-history?limit=50"));
  fill("consent-history", list.map((record) =>
    el("li", { dataset: { channel: record.channel, category: record.category, granted: String(record.granted) } },
      el("strong", {}, `${label(CHANNEL_NAMES, record.channel)} · ${label(CATEGORY_NAMES, record.category)}`), ": ",
      record.granted ? t("allowed") : t("withdrawn"),
      el("span", { class: "muted" }, ` — ${label(SOURCE_NAMES, record.source)}, ${atSite(record.at)}, ${t("policy {version}", { version: record.policy_version })}`),
    )));
  document.getElementById("consent-empty").hidden = list.length > 0;
}

// ------------------------------------------------------------------ quiet hours and snooze

function zones(current) {
  let list = [];
  try {
    list = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  } catch {
    list = [];
  }
  const wanted = new Set([...list, current, config.site_timezone, Intl.DateTimeFormat().resolvedOptions().timeZone, "UTC"].filter(Boolean));
  return [...wanted].sort();
}

async function loadDnd() {
  dnd = await api("/api/me/dnd");
  renderDnd();
}

function renderDnd() {
  const windows = dnd.quiet_hours || [];
  const form = document.getElementById("dnd-form");
  if (windows.length) {
    form.elements.start.value = windows[0].start;
    form.elements.end.value = windows[0].end;
    const days = new Set(windows.map((w) => w.weekday));
    for (const input of form.querySelectorAll('input[name="dnd-days"]')) input.checked = days.has(Number(input.value));
  }
  fill("dnd-timezone", zones(dnd.timezone).map((zone) => el("option", { value: zone, selected: zone === dnd.timezone }, zone)));
  document.getElementById("dnd-summary").textContent = windows.length
    ? t("Quiet from {start} to {end} ({zone}), {days} days a week.", { start: windows[0].start, end: windows[0].end, zone: dnd.timezone, days: new Set(windows.map((w) => w.weekday)).size })
    : t("No quiet hours set.");
  const snoozed = dnd.snooze_until && Date.parse(dnd.snooze_until) > Date.now();
  const state = document.getElementById("snooze-state");
  state.textContent = snoozed ? t("Snoozed until {time}.", { time: atSite(dnd.snooze_until) }) : t("Not snoozed.");
  state.dataset.snoozed = String(Boolean(snoozed));
}

async function saveDnd(clear) {
  const form = document.getElementById("dnd-form");
  const days = [...form.querySelectorAll('input[name="dnd-days"]:checked')].map((input) => Number(input.value));
  const start = form.elements.start.value;
  const end = form.elements.end.value;
  const body = {
    timezone: form.elements.timezone.value || dnd?.timezone || config.site_timezone,
    quiet_hours: clear ? [] : days.map((weekday) => ({ weekday, start, end })),
    snooze_until: dnd?.snooze_until || null,
  };
  try {
    dnd = await api("/api/me/dnd", { method: "PUT", json: body });
    renderDnd();
    toast(t("Quiet hours saved"));
  } catch (error) {
    report(error, t("Not saved"));
  }
}

async function snooze(minutes) {
  try {
    dnd = await api("/api/me/dnd/snooze", { json: { minutes } });
    renderDnd();
  } catch (error) {
    report(error, t("Not saved"));
  }
}

// ------------------------------------------------------------------ my data

async function loadMyData() {
  const data = await api("/api/me/data");
  const rows = [
    [t("Name"), data.full_name],
    [t("Flats"), (data.units || []).map((u) => `${u.label} (${u.relation})`).join(", ")],
    [t("Contacts"), (data.contact_points || []).map((c) => `${c.value} (${c.label || c.kind})`).join(", ") || "—"],
    [t("Vehicles"), (data.vehicles || []).map((v) => v.plate).join(", ") || "—"],
    [t("Language"), data.locale],
    [t("Time zone"), data.timezone || config.site_timezone],
  ];
  fill("mydata", rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value || "—")]));
}

async function loadExports() {
  const list = itemsOf(await api("/api/me/exports"));
  fill("exports", list.map((item) =>
    el("li", { dataset: { exportId: item.id, status: item.status } },
      el("span", {}, `${atSite(item.created_at)} · ${label(EXPORT_STATUS, item.status)}`), " ",
      item.download_url
        ? el("a", { class: "btn-quiet", href: sameOrigin(item.download_url), download: "" }, t("Download ({size} KB)", { size: Math.max(1, Math.round(item.size_bytes / 1024)) }))
        : null,
    )));
}

async function requestExport() {
  try {
    await api("/api/me/exports", { method: "POST", json: {} });
    toast(t("Export requested: the download appears here when it is ready."));
    await loadExports();
  } catch (error) {
    report(error, t("Export not requested"));
  }
}

async function loadRequests() {
  const list = itemsOf(await api("/api/me/data-requests?limit=20"));
  fill("data-requests", list.map((item) =>
    el("li", { dataset: { requestId: item.id, kind: item.kind, status: item.status } },
      el("strong", {}, label(REQUEST_KINDS, item.kind)), ": ", label(REQUEST_STATUS, item.status),
      el("span", { class: "muted" }, ` — ${t("asked {when}, due by {due}", { when: atSite(item.created_at), due: atSite(item.due_at) })}`),
    )));
}

async function requestErasure(event) {
  event.preventDefault();
  const details = document.getElementById("erasure-details");
  try {
    await api("/api/me/data-requests", { json: { kind: "erasure", details: details.value.trim() } });
    details.value = "";
    toast(t("Erasure requested"));
    await loadRequests();
  } catch (error) {
    report(error, t("Erasure not requested"));
  }
}
