// My attendance: check in or out from my own phone, inside the site's geofence. The browser's position
// is asked for only when the button is tapped (the page says why first), sent once, and never kept:
// the hub answers with the punch, or with how far from the site I am.
import { api, ApiError, NetworkError } from "./api.js";
import { t } from "./i18n.js";
import { Realtime } from "./realtime.js";
import { clock, el, fill, showConnection } from "./shell.js";

const STATES = {
  upcoming: t("Due later"),
  due: t("Due now"),
  present: t("On time"),
  late: t("Came late"),
  not_arrived: t("Not arrived"),
  absent: t("Absent"),
  off: t("Off duty"),
};
const button = document.getElementById("me-punch");
const result = document.getElementById("me-result");

function say(kind, title, line) {
  fill(result, [el("div", { class: `result result-${kind}` }, el("p", { class: "result-title" }, title), line ? el("p", { class: "result-line" }, line) : null)]);
}

async function load() {
  const me = await api("/api/attendance/me");
  const status = document.getElementById("me-status");
  if (!me.on_staff) {
    status.textContent = t("You are not on this site's staff list. Ask the FM team to add you.");
    return;
  }
  status.textContent = me.inside
    ? t("{name}: checked in since {time}", { name: me.name, time: clock(me.last_punch.at) })
    : t("{name}: not checked in", { name: me.name });
  status.dataset.inside = me.inside ? "1" : "0";
  fill(
    "me-today",
    me.today
      .filter((row) => row.duty)
      .map((row) => el("li", { dataset: { state: row.state } }, `${row.duty} · ${STATES[row.state] || row.state}`)),
  );
  document.getElementById("me-actions").hidden = !me.phone_check_in;
  document.getElementById("me-gate-only").hidden = me.phone_check_in;
  button.dataset.kind = me.inside ? "out" : "in";
  button.textContent = me.inside ? t("Check out here") : t("Check in here");
}

function position() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) {
      reject(new Error(t("This browser cannot tell its position: check in at the gate.")));
      return;
    }
    navigator.geolocation.getCurrentPosition(resolve, reject, { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 });
  });
}

button.addEventListener("click", async () => {
  const kind = button.dataset.kind;
  button.disabled = true;
  say("info", t("Finding your position…"), null);
  try {
    const found = await position();
    const { latitude, longitude, accuracy } = found.coords;
    const punch = await api("/api/attendance/me/punch", { json: { kind, latitude, longitude, accuracy_m: accuracy } });
    say("ok", kind === "in" ? t("Checked in") : t("Checked out"), t("at {time}", { time: clock(punch.at) }));
    await load();
  } catch (error) {
    if (error instanceof ApiError) {
      const extra = error.problem.extra || {};
      const line =
        extra.reason === "outside_geofence"
          ? t("You are {distance} m from the site; check-ins are taken within {radius} m.", { distance: extra.distance_m, radius: extra.radius_m })
          : extra.reason === "too_imprecise"
            ? t("Your position is accurate only to {accuracy} m: step outside and try again, or check in at the gate.", { accuracy: Math.round(extra.accuracy_m) })
            : error.message;
      say("bad", t("Not checked in"), line);
      result.firstElementChild.dataset.reason = extra.reason || "";
    } else if (error instanceof NetworkError) {
      say("bad", t("Offline"), t("Offline: try again when the connection is back."));
    } else if (error && error.code === 1) {
      say("bad", t("Not checked in"), t("Location permission was refused: check in at the gate instead."));
    } else {
      say("bad", t("Not checked in"), error.message || String(error));
    }
  } finally {
    button.disabled = false;
  }
});

const realtime = new Realtime();
showConnection(realtime);
realtime.start();
load().catch((error) => say("bad", t("Not checked in"), error.message || String(error)));
