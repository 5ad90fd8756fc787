// The announcement composer and the live delivery counters of sent announcements.
//
// Counters come from `announcement.progress` events (site:{id}:control) and from
// GET /api/announcements/{id}. The pipeline throttles its progress events and provider status
// callbacks (sent -> delivered) publish none, so an announcement is also refetched every few
// seconds while anything is pending, and for a while after, until its numbers stop moving.
import { api, itemsOf, ApiError, NetworkError, newKey } from "./api.js";
import { t } from "./i18n.js";
import { el, toast, when } from "./shell.js";

const COUNTERS = ["sent", "delivered", "failed", "suppressed", "deferred", "pending"];
const POLL_MS = 2000;
const SETTLE_MS = 20000; // keep refetching this long after the last change of a finished one
const RECENT = 8;

function counterLabel(name) {
  return {
    sent: t("Sent"),
    delivered: t("Delivered"),
    failed: t("Failed"),
    suppressed: t("Suppressed"),
    deferred: t("Deferred"),
    pending: t("Pending"),
  }[name];
}

function channelLabel(name) {
  return { push: t("Push"), sms: t("SMS"), whatsapp: t("WhatsApp"), email: t("Email"), in_app: t("In-app") }[name] || name;
}

function reasonLabel(reason) {
  return (
    {
      no_consent: t("no consent"),
      no_contact_point: t("no contact point"),
      invalid_contact: t("invalid contact"),
      provider_opt_out: t("opted out at the provider"),
      national_dnd: t("national do-not-call list"),
      dnd: t("do not disturb"),
      promotional_hours: t("outside promotional hours"),
      expired: t("expired"),
      cancelled: t("cancelled"),
    }[reason] || reason.replaceAll("_", " ")
  );
}

function statusLabel(status) {
  return (
    {
      draft: t("Draft"),
      scheduled: t("Scheduled"),
      expanding: t("Preparing"),
      sending: t("Sending"),
      completed: t("Completed"),
      cancelled: t("Cancelled"),
    }[status] || status
  );
}

/** Per channel: the ledger's statuses folded into the board's counters. */
export function channelCounters(byStatus = {}) {
  const n = (s) => byStatus[s] || 0;
  return {
    sent: n("sent") + n("delivered") + n("read"),
    delivered: n("delivered") + n("read"),
    failed: n("failed"),
    suppressed: n("suppressed"),
    deferred: n("deferred"),
    pending: n("pending") + n("sending"),
  };
}

function openRows(counters) {
  return Object.values(counters.by_channel || {}).reduce((sum, s) => sum + (s.pending || 0) + (s.sending || 0) + (s.deferred || 0), 0);
}

function sameCounters(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class Announcements {
  constructor(list, { onFinal } = {}) {
    this.list = list;
    this.items = new Map(); // id -> {view, node, lastChange, final}
    this.onFinal = onFinal || (() => {});
    this.fetching = new Set();
    setInterval(() => this._poll(), POLL_MS);
  }

  async load() {
    const page = await api(`/api/announcements?limit=${RECENT}`);
    const views = await Promise.all(itemsOf(page).map((s) => api(`/api/announcements/${s.id}`).catch(() => null)));
    for (const view of views.reverse()) if (view) this.upsert(view);
    this._renderEmpty();
  }

  /** A progress event: new counters for one notification (announcements and event notifications alike). */
  onProgress(data) {
    const item = this.items.get(data.notification_id);
    if (!item) {
      this.fetch(data.notification_id); // sent from another console: show it if it is an announcement
      return;
    }
    const view = { ...item.view, counters: data.counters };
    this.upsert(view);
    if (!openRows(data.counters)) this.fetch(data.notification_id); // the status says whether it finished
  }

  async fetch(id) {
    if (this.fetching.has(id)) return;
    this.fetching.add(id);
    try {
      const view = await api(`/api/announcements/${id}`);
      if (view.kind === "announcement") this.upsert(view);
    } catch (error) {
      if (!(error instanceof NetworkError) && !(error instanceof ApiError)) throw error;
    } finally {
      this.fetching.delete(id);
    }
  }

  upsert(view) {
    let item = this.items.get(view.id);
    const now = Date.now();
    if (!item) {
      item = { view, node: null, lastChange: now, final: false };
      this.items.set(view.id, item);
    } else if (sameCounters(item.view.counters, view.counters) && item.view.status === view.status) {
      return;
    } else {
      item.view = view;
      item.lastChange = now;
    }
    const wasFinal = item.final;
    item.final = (view.status === "completed" || view.status === "cancelled") && openRows(view.counters) === 0;
    this._render(item);
    if (item.final && !wasFinal) this.onFinal(view);
    this._renderEmpty();
  }

  _poll() {
    const now = Date.now();
    for (const [id, item] of this.items) {
      if (!item.final || now - item.lastChange < SETTLE_MS) this.fetch(id);
    }
  }

  _renderEmpty() {
    const empty = this.list.querySelector(":scope > li.empty");
    if (this.items.size && empty) empty.remove();
    if (!this.items.size && !empty) this.list.append(el("li", { class: "empty" }, t("No announcements yet")));
  }

  _render(item) {
    const { view } = item;
    const rows = view.channels.map((channel) => {
      const counts = channelCounters(view.counters.by_channel?.[channel]);
      return el(
        "div",
        { class: "channel-row", dataset: { channel } },
        el("strong", {}, channelLabel(channel)),
        ...COUNTERS.map((name) =>
          el("span", { class: `counter counter-${name}` }, `${counterLabel(name)} `, el("b", { class: "num", dataset: { counter: name } }, String(counts[name]))),
        ),
      );
    });
    const reasons = Object.entries(view.counters.suppressed_by_reason || {});
    const node = el(
      "li",
      { dataset: { announcementId: view.id, final: item.final ? "true" : "false", status: view.status } },
      el(
        "div",
        { class: "announcement-head" },
        el("strong", {}, view.title),
        el("span", { class: `badge ${item.final ? "ok" : ""}`.trim() }, statusLabel(view.status)),
        el("span", { class: "muted" }, view.scheduled_at ? t("for {time}", { time: when(view.scheduled_at) }) : when(view.created_at)),
        el("span", { class: "muted" }, t("{n} people", { n: view.targeted })),
      ),
      el("div", { class: "counters" }, ...rows),
      reasons.length
        ? el(
            "p",
            { class: "muted counters", dataset: { role: "suppressed-reasons" } },
            t("Suppressed by reason:"),
            " ",
            reasons.map(([reason, n]) => `${reasonLabel(reason)} ${n}`).join(", "),
          )
        : null,
    );
    if (item.node) item.node.replaceWith(node);
    else this.list.prepend(node);
    item.node = node;
  }
}

/** The composer: validates what the API would refuse, posts once per submit (idempotency key). */
export function wireComposer(form, announcements) {
  const error = form.querySelector("#announce-error");
  const button = form.querySelector("button[type=submit]");

  function fail(message, field) {
    error.textContent = message;
    error.hidden = false;
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus();
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const title = String(data.get("title") || "").trim();
    const body = String(data.get("body") || "").trim();
    const channels = data.getAll("channels").map(String);
    const audience = {
      everyone: data.get("everyone") === "on",
      building_ids: data.getAll("building_ids").map(String),
      unit_ids: data.getAll("unit_ids").map(String),
      roles: data.getAll("roles").map(String),
    };
    if (!title) return fail(t("Give the announcement a title."), form.elements.title);
    if (!body) return fail(t("Write the message."), form.elements.body);
    if (!audience.everyone && !audience.building_ids.length && !audience.unit_ids.length && !audience.roles.length) {
      return fail(t("Choose who it is for: everyone, towers, units or roles."), form.querySelector("#a-everyone"));
    }
    if (!channels.length) return fail(t("Choose at least one channel."), form.querySelector("input[name=channels]"));
    const schedule = String(data.get("scheduled_at") || "");
    const key = newKey();
    const request = {
      title,
      body,
      category: String(data.get("category")),
      urgency: String(data.get("urgency")),
      channels,
      audience,
      idempotency_key: key,
    };
    if (schedule) request.scheduled_at = new Date(schedule).toISOString();
    button.disabled = true;
    try {
      const created = await api("/api/announcements", { json: request, idempotencyKey: key });
      await announcements.fetch(created.id);
      toast(schedule ? t("Announcement scheduled") : t("Announcement sent"));
      form.elements.title.value = "";
      form.elements.body.value = "";
      form.elements.scheduled_at.value = "";
    } catch (caught) {
      if (caught instanceof ApiError) {
        const field = (caught.problem.errors || [])[0]?.field || "";
        const name = field.replace(/^audience\./, "");
        fail(caught.fieldMessage(field) ? `${field}: ${caught.fieldMessage(field)}` : caught.message, form.elements[name] || null);
      } else {
        fail(t("Not sent: no connection to the hub. Try again."));
      }
    } finally {
      button.disabled = false;
    }
  });
}
