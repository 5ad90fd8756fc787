// Home: the in-app notification feed and its unread badge. New entries arrive on user:{me}
// (notification.created); reads on another device arrive as notification.read.
import { api, itemsOf } from "./api.js";
import { t } from "./i18n.js";
import { el, fill } from "./shell.js";
import { atSite, label, CATEGORY_NAMES, report } from "./occupant-common.js";

const entries = new Map(); // delivery_id -> feed item
let unread = 0;

export function init({ realtime }) {
  realtime.onPrefix("user:", onEvent, () => load().catch(report));
  document.getElementById("read-all").addEventListener("click", readAll);
}

export async function load() {
  const page = await api("/api/me/notifications?limit=50");
  entries.clear();
  for (const item of itemsOf(page)) entries.set(item.delivery_id, item);
  unread = typeof page.unread === "number" ? page.unread : [...entries.values()].filter((e) => !e.read_at).length;
  render();
}

function onEvent(event) {
  if (event.type === "notification.created") {
    const data = event.data;
    if (entries.has(data.delivery_id)) return;
    entries.set(data.delivery_id, {
      ...data,
      sent_at: new Date((event.ts || Date.now() / 1000) * 1000).toISOString(),
      read_at: null,
    });
    unread += 1;
    render();
  } else if (event.type === "notification.read") {
    const data = event.data;
    if (data.all) {
      for (const entry of entries.values()) if (!entry.read_at) entry.read_at = data.read_at;
    } else {
      for (const id of data.delivery_ids) {
        const entry = entries.get(id);
        if (entry && !entry.read_at) entry.read_at = data.read_at;
      }
    }
    // The server's count is the truth (entries older than the page's first 50 count too).
    load().catch(report);
  }
}

async function markRead(entry, button) {
  button.disabled = true;
  try {
    const result = await api(`/api/me/notifications/${entry.delivery_id}/read`, { method: "POST", json: {} });
    if (!entry.read_at) unread = Math.max(0, unread - 1);
    entry.read_at = result.read_at;
    render();
  } catch (error) {
    button.disabled = false;
    report(error, t("Could not mark it read"));
  }
}

async function readAll() {
  try {
    const result = await api("/api/me/notifications/read-all", { method: "POST", json: {} });
    for (const entry of entries.values()) if (!entry.read_at) entry.read_at = result.read_at;
    unread = 0;
    render();
  } catch (error) {
    report(error, t("Could not mark them read"));
  }
}

function render() {
  const badge = document.getElementById("unread-count");
  badge.textContent = String(unread);
  badge.dataset.zero = String(unread === 0);
  const sorted = [...entries.values()].sort((a, b) => String(b.sent_at || b.created_at).localeCompare(String(a.sent_at || a.created_at)));
  fill(
    "feed",
    sorted.map((entry) =>
      el(
        "li",
        { class: `feed-item ${entry.read_at ? "read" : "unread"}`, dataset: { deliveryId: entry.delivery_id, read: String(Boolean(entry.read_at)) } },
        el("div", { class: "row" },
          el("strong", { class: "grow" }, entry.title),
          entry.urgency && entry.urgency !== "normal" ? el("span", { class: "badge warn" }, label({ high: t("Important"), critical: t("Urgent") }, entry.urgency)) : null,
        ),
        el("p", { class: "feed-body" }, entry.body),
        el("div", { class: "row" },
          el("span", { class: "muted grow" }, `${label(CATEGORY_NAMES, entry.category)} · ${atSite(entry.sent_at || entry.created_at)}`),
          entry.read_at
            ? el("span", { class: "muted" }, t("Read"))
            : el("button", { type: "button", class: "btn-quiet", onclick: (event) => markRead(entry, event.currentTarget) }, t("Mark read")),
        ),
      ),
    ),
  );
  document.getElementById("feed-empty").hidden = entries.size > 0;
}
