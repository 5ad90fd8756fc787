// What every console page shares: the connection badge and offline banner, toasts, and small DOM helpers.
import { t } from "./i18n.js";

/** el("li", {class: "x", dataset: {id}}, child, "text") -> an element; never parses HTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the children of a container (by id or element). */
export function fill(container, children) {
  const node = typeof container === "string" ? document.getElementById(container) : container;
  node.replaceChildren(...children);
  return node;
}

export function toast(message, kind = "") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = el("div", { class: `toast ${kind}`.trim() }, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

/** Wire the connection badge and the offline banner to a Realtime client (and, optionally, an outbox). */
export function showConnection(realtime, outbox) {
  const badge = document.getElementById("conn-state");
  const banner = document.getElementById("offline-banner");
  const labels = { online: t("Live"), connecting: t("Reconnecting…"), offline: t("Offline") };
  realtime.onStatus((state) => {
    if (badge) {
      badge.dataset.state = state;
      badge.textContent = labels[state] || state;
    }
    if (banner) banner.hidden = state !== "offline";
    document.body.dataset.connection = state;
    if (state === "online" && outbox) outbox.flush();
  });
}

const timeFormat = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});

export function clock(value) {
  return value ? timeFormat.format(new Date(value)) : "";
}

export function when(value) {
  return value ? dateTimeFormat.format(new Date(value)) : "";
}

/** "2 min 05 s" style age from an ISO time (or epoch seconds) to now. */
export function age(since) {
  const start = typeof since === "number" ? since * 1000 : Date.parse(since);
  const seconds = Math.max(0, Math.round((Date.now() - start) / 1000));
  if (seconds < 60) return t("{s} s", { s: seconds });
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return t("{m} min {s} s", { m: minutes, s: String(seconds % 60).padStart(2, "0") });
  return t("{h} h {m} min", { h: Math.floor(minutes / 60), m: minutes % 60 });
}
