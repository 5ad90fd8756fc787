// Report a problem about a place reached from its QR code: the complaint names the place (and its asset),
// and its location is the place's, so an occupant needs no unit and a guard need not type where it is.
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";

const config = JSON.parse(document.getElementById("report-config").textContent);
const form = document.getElementById("report-form");
const error = document.getElementById("report-error");

function showError(message) {
  error.textContent = message;
  error.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const description = form.description.value.trim();
  if (description.length < 3) {
    showError(t("Please say what is wrong."));
    return;
  }
  const body = { category: form.category.value, description, place_id: config.place_id, location: config.location };
  if (config.asset_id) body.asset_id = config.asset_id;
  if (config.staff) body.work_order = true;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const complaint = await api("/api/complaints", { json: body });
    const photo = form.photo.files[0];
    if (photo) {
      const data = new FormData();
      data.append("file", photo);
      data.append("stage", "before");
      await api(`/api/complaints/${complaint.id}/photos`, { form: data });
    }
    form.hidden = true;
    const done = document.getElementById("report-done");
    done.dataset.complaintId = complaint.id;
    done.hidden = false;
  } catch (failure) {
    showError(failure instanceof ApiError ? failure.message : t("No connection. Please try again."));
  } finally {
    button.disabled = false;
  }
});
