// The control room's maintenance and QR pages: each form posts JSON to the API (CSRF header from api.js),
// a problem is shown under its form naming the field, and a success reloads the page's server-rendered
// lists. Money is typed in rupees and sent as integer paise, computed from the digits (never a float).
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { toast } from "./shell.js";

function showError(form, error) {
  const box = form.querySelector(".error") || document.getElementById("place-error");
  if (!box) return;
  const fields = error instanceof ApiError ? (error.problem.errors || []).map((e) => `${e.field}: ${e.message}`) : [];
  box.textContent = fields.length ? fields.join("; ") : error instanceof ApiError ? error.message : t("No connection. Please try again.");
  box.hidden = false;
}

/** "1,20,000.50" -> 12000050; null for an empty field; throws on anything else. */
export function toPaise(text) {
  const clean = text.replace(/[,\s₹]/g, "");
  if (!clean) return null;
  const match = /^(\d{1,11})(?:\.(\d{1,2}))?$/.exec(clean);
  if (!match) throw new Error(t("Write an amount like 120000 or 120000.50"));
  return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
}

/** The form's fields as a JSON body: empty fields left out, typed fields converted. */
function body(form) {
  const out = {};
  for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    if (input.type === "file" || input.type === "checkbox" || input.form !== form) continue;
    const value = input.value.trim();
    if (!value) continue;
    if (input.dataset.money) out[input.dataset.money] = toPaise(value);
    else if ("int" in input.dataset) out[input.name] = Number(value);
    else if ("intList" in input.dataset) out[input.name] = value.split(/[,\s]+/).filter(Boolean).map(Number);
    else out[input.name] = value;
  }
  return out;
}

async function submit(form, send) {
  const button = form.querySelector("button[type=submit]");
  const box = form.querySelector(".error");
  if (box) box.hidden = true;
  if (button) button.disabled = true;
  try {
    await send();
    location.reload();
  } catch (error) {
    if (error instanceof ApiError || !(error instanceof TypeError)) showError(form, error);
    else throw error;
  } finally {
    if (button) button.disabled = false;
  }
}

const ACTIONS = {
  "create-asset": (form) => api("/api/amc/assets", { json: body(form) }),
  "create-contract": (form) => api("/api/amc/contracts", { json: body(form) }),
  "reminder-settings": (form) => api("/api/amc/settings", { method: "PUT", json: body(form) }),
  "renew-contract": (form) => api(`/api/amc/contracts/${form.dataset.contractId}/renew`, { json: body(form) }),
  "cancel-contract": (form) => api(`/api/amc/contracts/${form.dataset.contractId}/cancel`, { json: {} }),
  "complete-visit": async (form) => {
    const visitId = form.dataset.visitId;
    const checklist = [...form.querySelectorAll('input[name="checklist"]')].map((box) => ({ item: box.value, ok: box.checked }));
    const report = { notes: form.notes.value.trim(), checklist };
    if (form.completed_on.value) report.completed_on = form.completed_on.value;
    await api(`/api/amc/visits/${visitId}/complete`, { json: report });
    const photo = form.photo.files[0];
    if (photo) {
      const data = new FormData();
      data.append("file", photo);
      await api(`/api/amc/visits/${visitId}/attachments`, { form: data });
    }
  },
  "create-place": (form) => {
    const data = body(form);
    const { opens, closes } = data;
    delete data.opens;
    delete data.closes;
    if (opens && closes) data.opening_hours = Object.fromEntries([0, 1, 2, 3, 4, 5, 6].map((day) => [String(day), [[opens, closes]]]));
    return api("/api/places", { json: data });
  },
};

for (const form of document.querySelectorAll("form[data-action]")) {
  const action = form.dataset.action;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (action === "print-sheet") {
      const chosen = [...document.querySelectorAll('input[name="place_id"]:checked')].map((box) => `place_id=${encodeURIComponent(box.value)}`);
      if (!chosen.length) {
        toast(t("Choose the places to print first"));
        return;
      }
      window.open(`/api/places/sheet.pdf?${chosen.join("&")}`, "_blank", "noopener");
      return;
    }
    if (action === "cancel-contract" && !window.confirm(t("Cancel this contract and its visits not yet done?"))) return;
    submit(form, () => ACTIONS[action](form));
  });
}

// Place rows: replace a code (the old sticker then says "no longer in use"), retire, bring back.
for (const button of document.querySelectorAll("button[data-action][data-place-id]")) {
  button.addEventListener("click", async () => {
    const { action, placeId } = button.dataset;
    if (action === "revoke" && !window.confirm(t("Replace this code? The printed one stops working."))) return;
    const errorBox = document.getElementById("place-error");
    errorBox.hidden = true;
    button.disabled = true;
    try {
      await api(`/api/places/${placeId}/${action}`, action === "revoke" ? { json: { reissue: true } } : { method: "POST" });
      location.reload();
    } catch (error) {
      showError(document.createElement("div"), error); // shown in #place-error
      button.disabled = false;
    }
  });
}
