// Complaints: raise one with photos, my complaints (live from unit:{id}), and one followed in detail
// (complaint:{id}): status moves, public comments (the API never hands internal notes to occupants),
// the moves the API allows me now (close, reopen, cancel) and the rating.
import { ApiError, allItems, api, itemsOf, newKey } from "./api.js";
import { t } from "./i18n.js";
import { el, fill, toast } from "./shell.js";
import { COMPLAINT_STATUS, atSite, label, report, showError } from "./occupant-common.js";

const complaints = new Map(); // id -> ComplaintView (as listed)
let categories = [];
let following = null; // id of the complaint open in detail
let detail = null; // {complaint, transitions, photos, comments}
let detailAsks = 0; // loads started
let detailDrawn = 0; // the newest load whose answer is on the page
const watched = new Set();
let realtimeRef = null;
// The followed complaint's forms are built once and kept across re-renders, so a live update
// never wipes what the person is typing or has chosen.
let forms = { id: null, comment: null, rating: null };

const MOVE_LABELS = { closed: t("Close it: it is fixed"), reopened: t("Reopen"), cancelled: t("Cancel complaint") };
const STATUS_BADGE = { resolved: "ok", closed: "ok", cancelled: "", on_hold: "warn", reopened: "warn" };

export function init({ realtime }) {
  realtimeRef = realtime;
  realtime.onPrefix("unit:", onEvent, () => loadList().catch(report));
  document.getElementById("complaint-form").addEventListener("submit", raise);
  document.getElementById("c-category").addEventListener("change", fillSubcategories);
  document.getElementById("complaints").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-open]");
    if (button) follow(button.dataset.open);
  });
}

export async function load() {
  await Promise.all([loadCategories(), loadList()]);
}

async function loadCategories() {
  categories = (await allItems("/api/complaints/config/categories")).filter((c) => c.is_active !== false);
  fill("c-category", categories.map((c) => el("option", { value: c.code }, c.name)));
  fillSubcategories();
}

function fillSubcategories() {
  const chosen = categories.find((c) => c.code === document.getElementById("c-category").value);
  const subs = chosen ? chosen.subcategories : [];
  fill("c-subcategory", [el("option", { value: "" }, t("Not sure")), ...subs.map((s) => el("option", { value: s }, label({}, s)))]);
  document.getElementById("c-subcategory-row").hidden = subs.length === 0;
}

function categoryName(code) {
  return categories.find((c) => c.code === code)?.name || label({}, code);
}

async function loadList() {
  const page = await api("/api/complaints?limit=50");
  complaints.clear();
  for (const item of itemsOf(page)) complaints.set(item.id, item);
  renderList();
}

function renderList() {
  const sorted = [...complaints.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  fill(
    "complaints",
    sorted.map((c) =>
      el("li", { class: "complaint", dataset: { complaintId: c.id, status: c.status } },
        el("div", { class: "row" },
          el("strong", { class: "grow" }, categoryName(c.category)),
          el("span", { class: `badge ${STATUS_BADGE[c.status] ?? "info"}`, dataset: { role: "status" } }, label(COMPLAINT_STATUS, c.status)),
        ),
        el("p", { class: "clip" }, c.description),
        el("div", { class: "row" },
          el("span", { class: "muted grow" }, [c.unit_label, atSite(c.created_at)].filter(Boolean).join(" · ")),
          el("button", { type: "button", class: "btn-quiet", dataset: { open: c.id }, "aria-label": t("Open the complaint: {what}", { what: categoryName(c.category) }) }, t("Open")),
        ),
      ),
    ),
  );
  document.getElementById("complaints-empty").hidden = complaints.size > 0;
}

function onEvent(event) {
  if (!event.type.startsWith("complaint.")) return;
  const data = event.data;
  const id = data.complaint_id;
  if (["complaint.raised", "complaint.status_changed", "complaint.assigned"].includes(event.type)) {
    const known = complaints.get(id);
    if (known) {
      if (data.version >= known.version) {
        Object.assign(known, { status: data.status, version: data.version, assignee_name: data.assignee_name, sla_state: data.sla_state });
        renderList();
      }
    } else {
      loadList().catch(report);
    }
    if (id === following && (!detail || data.version > detail.complaint.version)) loadDetail().catch(report);
  } else if (event.type === "complaint.commented") {
    if (id === following && detail && !detail.comments.some((c) => c.id === data.comment_id)) {
      detail.comments.push({ id: data.comment_id, author_id: data.author_id, author_name: data.author_name, body: data.body, at: data.at });
      renderDetail();
    }
  } else if (id === following) {
    loadDetail().catch(report);
  }
}

async function follow(id) {
  following = id;
  if (!watched.has(id)) {
    watched.add(id);
    // The complaint's own topic: escalations and every change, even if it has no unit.
    realtimeRef.on(`complaint:${id}`, onEvent, () => (following === id ? loadDetail().catch(report) : null));
  }
  await loadDetail().catch(report);
  document.getElementById("complaint-detail").scrollIntoView({ block: "start" });
}

async function loadDetail() {
  if (!following) return;
  const id = following;
  const asked = ++detailAsks;
  const [found, comments] = await Promise.all([api(`/api/complaints/${id}`), allItems(`/api/complaints/${id}/comments`)]);
  // Several loads can be in flight (a move's own reload and its live event): an answer that is older than
  // one already drawn must not take away a comment or a status the page has since shown.
  if (id !== following || asked < detailDrawn) return;
  detailDrawn = asked;
  const fetched = itemsOf(comments);
  if (detail && detail.complaint.id === id) {
    if (detail.complaint.version > found.complaint.version) return;
    const seen = new Set(fetched.map((m) => m.id));
    for (const m of detail.comments) if (!seen.has(m.id)) fetched.push(m);
    fetched.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  }
  const unchanged = detail && detail.complaint.id === id && drawnAs(detail) === drawnAs({ ...found, comments: fetched });
  detail = { ...found, comments: fetched };
  complaints.set(id, { ...found.complaint });
  renderList();
  // Redrawing what is already shown would only take the focus, and a click half-done, from the form.
  if (!unchanged) renderDetail();
}

function drawnAs(shown) {
  const c = shown.complaint;
  return JSON.stringify([c.version, c.status, c.rating, c.assignee_name, c.allowed_moves, shown.photos.map((p) => p.id),
    shown.transitions.length, shown.comments.map((m) => m.id)]);
}

function renderDetail() {
  const box = document.getElementById("complaint-detail");
  if (!detail) {
    box.hidden = true;
    return;
  }
  const c = detail.complaint;
  const done = c.status === "resolved" || c.status === "closed";
  if (forms.id !== c.id) forms = { id: c.id, comment: commentForm(c), rating: ratingForm(c) };
  box.dataset.detailId = c.id;
  box.dataset.detailStatus = c.status;
  fill(box, [
    el("div", { class: "row" },
      el("h2", { class: "grow", id: "detail-title" }, categoryName(c.category)),
      el("button", { type: "button", class: "btn-quiet", onclick: closeDetail }, t("Back to the list")),
    ),
    el("p", {}, el("span", { class: `badge ${STATUS_BADGE[c.status] ?? "info"}`, id: "detail-status" }, label(COMPLAINT_STATUS, c.status)),
      c.assignee_name ? el("span", { class: "muted" }, " ", t("Technician: {name}", { name: c.assignee_name })) : null),
    el("p", {}, c.description),
    c.resolution_due_at && !done && c.status !== "cancelled" ? el("p", { class: "muted" }, t("To be resolved by {time}", { time: atSite(c.resolution_due_at) })) : null,
    detail.photos.length
      ? el("div", { class: "row photos" }, detail.photos.map((p) =>
          el("img", { class: "thumb", src: `/api/complaints/${c.id}/photos/${p.id}`, alt: p.stage === "after" ? t("Photo after the work") : t("Photo of the problem"), width: 64, height: 64 })))
      : null,
    el("h3", {}, t("What happened")),
    el("ol", { class: "timeline" }, detail.transitions.map((tr) =>
      el("li", {}, el("strong", {}, label(COMPLAINT_STATUS, tr.to_status)), " · ", el("span", { class: "muted" }, atSite(tr.at)),
        tr.actor_name ? el("span", { class: "muted" }, " · ", tr.actor_name) : null))),
    el("h3", { id: "comments-title" }, t("Comments")),
    el("ul", { class: "list comments", "aria-labelledby": "comments-title" }, detail.comments.map((m) =>
      el("li", { dataset: { commentId: m.id } }, el("strong", {}, m.author_name || t("FM team")), " ", el("span", { class: "muted" }, atSite(m.at)), el("p", {}, m.body)))),
    detail.comments.length ? null : el("p", { class: "empty" }, t("No comments yet.")),
    forms.comment,
    c.allowed_moves.length
      ? el("div", { class: "row" }, c.allowed_moves.filter((m) => MOVE_LABELS[m]).map((m) =>
          el("button", { type: "button", class: m === "reopened" || m === "cancelled" ? "btn" : "btn-ok", dataset: { move: m }, onclick: (e) => move(c, m, e.currentTarget) }, MOVE_LABELS[m])))
      : null,
    done && c.rating == null ? forms.rating : null,
    c.rating != null ? el("p", { class: "muted" }, t("You rated it {n} of 5.", { n: c.rating })) : null,
  ].filter(Boolean));
  box.hidden = false;
}

function closeDetail() {
  following = null;
  detail = null;
  renderDetail();
}

function commentForm(c) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const area = el("textarea", { id: "comment-body", name: "body", maxlength: 4000, required: true });
  return el("form", {
    class: "stack", novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      const body = area.value.trim();
      if (!body) return;
      try {
        const made = await api(`/api/complaints/${c.id}/comments`, { json: { body }, idempotencyKey: newKey() });
        area.value = "";
        if (detail && !detail.comments.some((m) => m.id === made.id)) detail.comments.push(made);
        renderDetail();
      } catch (err) {
        showError(error, err);
      }
    },
  },
  el("label", { for: "comment-body" }, t("Add a comment")), area, error,
  el("button", { type: "submit", class: "btn-primary" }, t("Send comment")));
}

function ratingForm(c) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const feedback = el("textarea", { id: "rating-feedback", name: "feedback", maxlength: 2000 });
  const stars = [1, 2, 3, 4, 5].map((n) =>
    el("label", { class: "check star" }, el("input", { type: "radio", name: "rating", value: n, checked: n === 5 }), " ", String(n)));
  return el("form", {
    class: "stack rating", novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      const chosen = event.currentTarget.querySelector('input[name="rating"]:checked');
      try {
        await api(`/api/complaints/${c.id}/rating`, { json: { rating: Number(chosen.value), feedback: feedback.value.trim() || null } });
        toast(t("Thank you for rating."));
        await loadDetail();
      } catch (err) {
        showError(error, err);
      }
    },
  },
  el("fieldset", {}, el("legend", {}, t("How well was it fixed? (5 is best)")), el("div", { class: "row" }, stars)),
  el("label", { for: "rating-feedback" }, t("Anything to add (optional)")), feedback, error,
  el("button", { type: "submit", class: "btn-primary" }, t("Rate")));
}

async function move(c, to, button) {
  button.disabled = true;
  try {
    await api(`/api/complaints/${c.id}/transitions`, { json: { to, version: c.version }, idempotencyKey: newKey() });
    await loadDetail();
  } catch (error) {
    button.disabled = false;
    if (error instanceof ApiError && error.status === 409) loadDetail().catch(report);
    report(error, t("Could not change the complaint"));
  }
}

async function raise(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const box = document.getElementById("complaint-error");
  const elements = form.elements;
  const description = elements.description.value.trim();
  if (!description) {
    showError(box, new Error(t("Say what is wrong.")));
    elements.description.focus();
    return;
  }
  const body = {
    category: elements.category.value,
    description,
    priority: elements.priority.value,
    unit_id: elements.unit_id ? elements.unit_id.value : undefined,
  };
  if (elements.subcategory.value) body.subcategory = elements.subcategory.value;
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const made = await api("/api/complaints", { json: body, idempotencyKey: newKey() });
    const files = [...elements.photos.files];
    for (const file of files) {
      const data = new FormData();
      data.append("file", file);
      data.append("stage", "before");
      try {
        await api(`/api/complaints/${made.id}/photos`, { form: data, idempotencyKey: newKey() });
      } catch (error) {
        report(error, t("A photo was not added"));
      }
    }
    form.reset();
    fillSubcategories();
    showError(box, null);
    toast(t("Complaint raised"));
    complaints.set(made.id, made);
    renderList();
    await follow(made.id);
  } catch (error) {
    showError(box, error);
  } finally {
    submit.disabled = false;
  }
}
