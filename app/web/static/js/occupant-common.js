// What the occupant app's sections share: the page's config, labels for the API's names, time formats
// in the site's clock, and one way to report a failed request.
import { ApiError, NetworkError } from "./api.js";
import { t } from "./i18n.js";
import { toast } from "./shell.js";

const node = document.getElementById("occupant-config");
export const config = node ? JSON.parse(node.textContent || "{}") : {};

/** A same-origin path for a URL the API returned absolute (its public URL may name another host). */
export function sameOrigin(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.pathname + parsed.search;
  } catch {
    return url;
  }
}

const lang = document.documentElement.lang || undefined;
const siteZone = config.site_timezone || undefined;
const siteTime = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", timeZone: siteZone });
const siteDateTime = new Intl.DateTimeFormat(lang, {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: siteZone,
});
const siteDay = new Intl.DateTimeFormat("en-CA", { timeZone: siteZone, year: "numeric", month: "2-digit", day: "2-digit" });

export function atSite(value) {
  return value ? siteDateTime.format(new Date(value)) : "";
}

export function timeAtSite(value) {
  return value ? siteTime.format(new Date(value)) : "";
}

/** Today's date (YYYY-MM-DD) on the site's clock. */
export function siteToday() {
  return siteDay.format(new Date());
}

/** A failed request, said once in a toast (never thrown further: the page keeps working). */
export function report(error, what) {
  let message;
  if (error instanceof NetworkError) message = t("No connection: try again when you are back online.");
  else if (error instanceof ApiError) message = error.message;
  else message = String(error && error.message ? error.message : error);
  toast(what ? `${what}: ${message}` : message, "bad");
}

/** The field errors of a problem, as one line for a form's error box. */
export function problemText(error) {
  if (!(error instanceof ApiError)) return error instanceof NetworkError ? t("No connection: try again when you are back online.") : String(error);
  const fields = (error.problem.errors || []).map((e) => `${e.field}: ${e.message}`);
  return fields.length ? fields.join("; ") : error.message;
}

export function showError(box, error) {
  box.textContent = error ? problemText(error) : "";
  box.hidden = !error;
}

export const KIND_NAMES = {
  guest: t("Guest"), cab: t("Cab"), delivery: t("Delivery"), service: t("Service"), daily_help: t("Daily help"),
};

export const CHANNEL_NAMES = {
  push: t("Push"), sms: t("SMS"), whatsapp: t("WhatsApp"), email: t("Email"), in_app: t("In the app"),
};

export const CATEGORY_NAMES = {
  emergency: t("Emergencies"), security: t("Security"), visitor: t("Visitors"), complaint: t("Complaints"),
  booking: t("Bookings"), billing: t("Bills"), permit: t("Permits"), attendance: t("Staff attendance"),
  maintenance: t("Maintenance"), report: t("Scheduled reports"), announcement: t("Announcements"), promotional: t("Offers and events"),
};

export const COMPLAINT_STATUS = {
  open: t("Received"), assigned: t("Assigned"), in_progress: t("In progress"), on_hold: t("On hold"),
  resolved: t("Resolved"), closed: t("Closed"), reopened: t("Reopened"), cancelled: t("Cancelled"),
};

export const APPROVAL_STATUS = {
  pending: t("Waiting for your answer"), approved: t("Approved"), denied: t("Denied"), leave_at_gate: t("Leave at gate"),
};

export function label(names, value) {
  return names[value] || String(value || "").replace(/_/g, " ");
}
