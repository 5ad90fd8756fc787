// Permits: apply for one (the type's own fields, documents, declarations, the people and vehicles coming),
// follow its approval steps live (permit.changed on my user and unit topics), and when it is sent back,
// edit and resubmit it. The form is drawn from the permit type the site declared; every rule is the API's.
import { allItems, api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { el, fill, toast } from "./shell.js";
import { atSite, label, report, showError } from "./occupant-common.js";

const permits = new Map(); // id -> PermitView (as listed)
let types = [];
let following = null; // id of the permit open in detail
let editing = null; // the PermitView being edited (sent back, or a draft a failed submission left)
let people = 2; // person rows in the form

export const PERMIT_STATUS = {
  draft: t("Draft"),
  pending: t("Waiting for approval"),
  changes_requested: t("Changes requested"),
  approved: t("Approved"),
  rejected: t("Rejected"),
  cancelled: t("Cancelled"),
  revoked: t("Revoked"),
};
const STEP_ACTIONS = {
  submitted: t("Submitted"),
  resubmitted: t("Resubmitted"),
  approved: t("Approved"),
  rejected: t("Rejected"),
  sent_back: t("Sent back for changes"),
  cancelled: t("Cancelled"),
  revoked: t("Revoked"),
};
const CHAIN_STATES = {
  approved: t("approved"),
  awaiting: t("deciding now"),
  waiting: t("waiting"),
  rejected: t("rejected"),
  sent_back: t("sent back"),
};
const STATUS_BADGE = { approved: "ok", rejected: "bad", revoked: "bad", cancelled: "", changes_requested: "warn" };

const form = () => document.getElementById("permit-form");

export function init({ realtime }) {
  const onEvent = (event) => {
    if (event.type !== "permit.changed") return;
    loadList().catch(report);
    if (following && event.data && event.data.permit_id === following) follow(following);
  };
  realtime.onPrefix("user:", onEvent, () => loadList().catch(report));
  realtime.onPrefix("unit:", onEvent, () => loadList().catch(report));
  form().addEventListener("submit", submit);
  document.getElementById("p-type").addEventListener("change", drawTypeFields);
  document.getElementById("p-add-person").addEventListener("click", () => {
    people += 1;
    drawPeople();
  });
  document.getElementById("p-stop-edit").addEventListener("click", () => stopEditing());
  document.getElementById("permits").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-open]");
    if (button) follow(button.dataset.open);
  });
}

export async function load() {
  await Promise.all([loadTypes(), loadList()]);
}

async function loadTypes() {
  types = await allItems("/api/permits/types");
  const select = document.getElementById("p-type");
  const keep = select.value;
  fill(select, types.map((type) => el("option", { value: type.code, selected: type.code === keep }, type.name)));
  drawTypeFields();
  drawPeople();
}

async function loadList() {
  const items = await allItems("/api/permits");
  permits.clear();
  for (const item of items) permits.set(item.id, item);
  renderList();
}

function renderList() {
  const sorted = [...permits.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  document.getElementById("permits-empty").hidden = sorted.length > 0;
  fill(
    "permits",
    sorted.map((p) =>
      el(
        "li",
        { class: "permit", dataset: { permitId: p.id, status: p.status } },
        el(
          "div",
          { class: "row" },
          el("strong", { class: "grow" }, `${p.type_name} · ${p.reference}`),
          el("span", { class: `badge ${STATUS_BADGE[p.status] ?? "info"}`, dataset: { role: "status" } }, label(PERMIT_STATUS, p.status)),
        ),
        el("p", { class: "clip" }, p.title),
        el(
          "div",
          { class: "row" },
          el(
            "span",
            { class: "muted grow" },
            p.awaiting ? t("Waiting for {who}", { who: p.awaiting }) : `${atSite(p.valid_from)} – ${atSite(p.valid_until)}`,
          ),
          el("button", { type: "button", class: "btn-quiet", dataset: { open: p.id }, "aria-label": t("Open permit {ref}", { ref: p.reference }) }, t("Open")),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------- the form

function chosenType() {
  const code = editing ? editing.type_code : document.getElementById("p-type").value;
  return types.find((type) => type.code === code);
}

function fieldInput(spec, value) {
  const id = `pf-${spec.key}`;
  const required = spec.required || spec.must_be_true;
  if (spec.type === "boolean") {
    return el(
      "label",
      { class: "check" },
      el("input", { type: "checkbox", id, name: spec.key, dataset: { field: spec.key, type: "boolean" }, checked: value === true }),
      ` ${spec.label}`,
    );
  }
  let input;
  if (spec.type === "multiline") {
    input = el("textarea", { id, maxlength: spec.max_length || 4000, required });
    input.value = value ?? "";
  } else if (spec.type === "choice") {
    input = el(
      "select",
      { id, required },
      el("option", { value: "" }, t("Choose")),
      ...(spec.choices || []).map((choice) => el("option", { value: choice, selected: choice === value }, choice)),
    );
  } else {
    const kind = spec.type === "number" ? "number" : spec.type === "date" ? "date" : "text";
    input = el("input", { id, type: kind, required, min: spec.min ?? undefined, max: spec.max ?? undefined, maxlength: kind === "text" ? spec.max_length || 200 : undefined, autocomplete: "off" });
    input.value = value ?? "";
  }
  input.dataset.field = spec.key;
  input.dataset.type = spec.type;
  return el("div", { class: "stack" }, el("label", { for: id }, spec.label, required ? " *" : ""), input);
}

function drawTypeFields() {
  const type = chosenType();
  const values = editing ? editing.values : {};
  const accepted = new Set(editing ? editing.declarations : []);
  const uploaded = new Set(editing ? editing.attachments.map((a) => a.slot) : []);
  document.getElementById("p-type-description").textContent = type ? type.description || "" : "";
  const limits = [];
  if (type) limits.push(t("At most {n} day(s).", { n: type.max_days }));
  if (type && type.daily_start) limits.push(t("Work only {from}-{to} each day.", { from: type.daily_start, to: type.daily_end }));
  document.getElementById("p-limits").textContent = limits.join(" ");
  fill("p-fields", type ? type.fields.map((spec) => fieldInput(spec, values[spec.key])) : []);
  fill(
    "p-attachments",
    type
      ? type.attachments.map((spec) =>
          el(
            "div",
            { class: "stack" },
            el("label", { for: `pa-${spec.key}` }, spec.label, spec.required ? " *" : ""),
            el("input", {
              id: `pa-${spec.key}`,
              type: "file",
              dataset: { slot: spec.key },
              accept: spec.accept === "image" ? "image/jpeg,image/png,image/webp" : spec.accept === "pdf" ? "application/pdf" : "image/jpeg,image/png,image/webp,application/pdf",
            }),
            uploaded.has(spec.key) ? el("span", { class: "muted" }, t("Already uploaded: choose a file only to replace it.")) : null,
          ),
        )
      : [],
  );
  document.getElementById("p-attachments-box").hidden = !type || type.attachments.length === 0;
  fill(
    "p-declarations",
    type
      ? type.declarations.map((spec) =>
          el(
            "label",
            { class: "check" },
            el("input", { type: "checkbox", dataset: { declaration: spec.key }, checked: accepted.has(spec.key) }),
            ` ${spec.text}`,
          ),
        )
      : [],
  );
  document.getElementById("p-declarations-box").hidden = !type || type.declarations.length === 0;
}

function drawPeople() {
  const named = editing ? editing.people : [];
  const box = document.getElementById("p-people");
  const current = [...box.querySelectorAll("[data-person]")].map((row) => ({
    name: row.querySelector("[data-role=name]").value,
    phone: row.querySelector("[data-role=phone]").value,
  }));
  const rows = [];
  for (let index = 0; index < Math.max(people, named.length); index += 1) {
    const before = current[index] || named[index] || {};
    const n = index + 1;
    const name = el("input", { id: `pp-name-${n}`, maxlength: 200, autocomplete: "off", dataset: { role: "name" } });
    name.value = before.name || "";
    const phone = el("input", { id: `pp-phone-${n}`, type: "tel", inputmode: "tel", maxlength: 32, autocomplete: "off", dataset: { role: "phone" } });
    phone.value = before.phone || "";
    rows.push(
      el(
        "div",
        { class: "stack person", dataset: { person: String(n) } },
        el("label", { for: `pp-name-${n}` }, t("Name of person {n}", { n })),
        name,
        el("label", { for: `pp-phone-${n}` }, t("Mobile of person {n}", { n })),
        phone,
      ),
    );
  }
  fill(box, rows);
}

function collect() {
  const root = form();
  const values = {};
  for (const input of root.querySelectorAll("#p-fields [data-field]")) {
    const key = input.dataset.field;
    if (input.dataset.type === "boolean") values[key] = input.checked;
    else if (input.dataset.type === "number") {
      if (input.value !== "") values[key] = Number(input.value);
    } else if (input.value.trim() !== "") values[key] = input.value.trim();
  }
  const declarations = [...root.querySelectorAll("[data-declaration]")].filter((box) => box.checked).map((box) => box.dataset.declaration);
  const named = [...root.querySelectorAll("[data-person]")]
    .map((row) => ({ name: row.querySelector("[data-role=name]").value.trim(), phone: row.querySelector("[data-role=phone]").value.trim() }))
    .filter((person) => person.name)
    .map((person) => (person.phone ? person : { name: person.name }));
  const plate = document.getElementById("p-plate").value.trim();
  const from = document.getElementById("p-from").value;
  const until = document.getElementById("p-until").value;
  return {
    title: document.getElementById("p-title").value.trim() || undefined,
    unit_id: document.getElementById("p-unit")?.value || undefined,
    valid_from: from ? new Date(from).toISOString() : undefined,
    valid_until: until ? new Date(until).toISOString() : undefined,
    values,
    declarations,
    people: named,
    vehicles: plate ? [{ plate }] : [],
  };
}

async function submit(event) {
  event.preventDefault();
  const box = document.getElementById("permit-error");
  showError(box, null);
  const body = collect();
  const button = document.getElementById("p-submit");
  button.disabled = true;
  try {
    let permit;
    if (editing) {
      permit = await api(`/api/permits/${editing.id}`, { method: "PUT", json: { ...body, version: editing.version } });
    } else {
      permit = await api("/api/permits", { json: { ...body, type: document.getElementById("p-type").value } });
    }
    // From here on the permit exists: a failure below leaves it as a draft to finish, not a second one.
    editing = permit;
    for (const input of form().querySelectorAll("input[type=file][data-slot]")) {
      for (const file of input.files) {
        const upload = new FormData();
        upload.append("slot", input.dataset.slot);
        upload.append("file", file, file.name);
        await api(`/api/permits/${permit.id}/attachments`, { form: upload });
      }
    }
    const submitted = await api(`/api/permits/${permit.id}/submit`, { json: {} });
    permits.set(submitted.id, submitted);
    renderList();
    toast(t("Permit {ref} submitted for approval", { ref: submitted.reference }));
    stopEditing();
    follow(submitted.id);
  } catch (error) {
    showError(box, error);
    if (editing) startEditing(editing, false);
  } finally {
    button.disabled = false;
  }
}

function startEditing(permit, scroll = true) {
  editing = permit;
  const root = form();
  document.getElementById("permit-form-title").textContent = t("Edit permit {ref}", { ref: permit.reference });
  const select = document.getElementById("p-type");
  select.value = permit.type_code;
  select.disabled = true;
  document.getElementById("p-title").value = permit.title;
  if (permit.unit_id && document.getElementById("p-unit")) document.getElementById("p-unit").value = permit.unit_id;
  document.getElementById("p-from").value = localInput(permit.valid_from);
  document.getElementById("p-until").value = localInput(permit.valid_until);
  document.getElementById("p-plate").value = permit.vehicles[0]?.plate || "";
  people = Math.max(2, permit.people.length);
  document.getElementById("p-people").replaceChildren();
  drawTypeFields();
  drawPeople();
  document.getElementById("p-submit").textContent = permit.status === "draft" ? t("Submit for approval") : t("Resubmit for approval");
  document.getElementById("p-stop-edit").hidden = false;
  if (scroll) root.scrollIntoView({ behavior: "smooth", block: "start" });
}

function stopEditing() {
  editing = null;
  const root = form();
  root.reset();
  document.getElementById("p-type").disabled = false;
  document.getElementById("permit-form-title").textContent = t("Apply for a permit");
  document.getElementById("p-submit").textContent = t("Submit for approval");
  document.getElementById("p-stop-edit").hidden = true;
  people = 2;
  document.getElementById("p-people").replaceChildren();
  drawTypeFields();
  drawPeople();
}

function localInput(value) {
  const date = new Date(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// ---------------------------------------------------------------------------- one permit, followed

async function follow(id) {
  following = id;
  const box = document.getElementById("permit-detail");
  try {
    const detail = await api(`/api/permits/${id}`);
    if (following !== id) return;
    drawDetail(box, detail);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      box.hidden = true;
      following = null;
      return;
    }
    report(error);
  }
}

function drawDetail(box, { permit, steps }) {
  const actions = [];
  if (permit.allowed.includes("edit")) {
    actions.push(
      el("button", { type: "button", class: "btn-primary", onclick: () => startEditing(permit) }, permit.status === "draft" ? t("Finish and submit") : t("Edit and resubmit")),
    );
  }
  if (permit.allowed.includes("cancel")) {
    actions.push(
      el(
        "button",
        {
          type: "button",
          class: "btn-quiet",
          onclick: async () => {
            try {
              await api(`/api/permits/${permit.id}/cancel`, { json: { version: permit.version } });
              follow(permit.id);
              loadList().catch(report);
            } catch (error) {
              report(error);
            }
          },
        },
        t("Cancel permit"),
      ),
    );
  }
  fill(box, [
    el(
      "div",
      { class: "row" },
      el("h2", { class: "grow" }, `${permit.type_name} · ${permit.reference}`),
      el("span", { class: `badge ${STATUS_BADGE[permit.status] ?? "info"}` }, label(PERMIT_STATUS, permit.status)),
    ),
    el("p", {}, permit.title, permit.unit_label ? ` · ${permit.unit_label}` : ""),
    el("p", { class: "muted" }, `${atSite(permit.valid_from)} – ${atSite(permit.valid_until)}`, permit.daily_start ? ` · ${t("daily {from}-{to}", { from: permit.daily_start, to: permit.daily_end })}` : ""),
    permit.decision_reason ? el("p", { class: "reason", role: "note" }, el("strong", {}, t("Why:")), ` ${permit.decision_reason}`) : null,
    el("h3", {}, t("Approvals")),
    el(
      "ol",
      { class: "chain" },
      permit.chain.map((step) =>
        el(
          "li",
          { dataset: { state: step.state } },
          `${step.label}: ${label(CHAIN_STATES, step.state)}`,
          step.by_name ? ` · ${step.by_name}` : "",
          step.at ? ` · ${atSite(step.at)}` : "",
        ),
      ),
    ),
    el("h3", {}, t("History")),
    el(
      "ol",
      { class: "steps list" },
      steps.map((step) =>
        el(
          "li",
          { dataset: { action: step.action } },
          el("strong", {}, label(STEP_ACTIONS, step.action)),
          step.step_label ? ` (${step.step_label})` : "",
          ` · ${step.actor_name || t("the FM team")} · ${atSite(step.at)}`,
          step.note ? el("p", { class: "muted" }, step.note) : null,
        ),
      ),
    ),
    permit.people.length ? el("p", { class: "muted" }, t("People: {names}", { names: permit.people.map((p) => p.name).join(", ") })) : null,
    actions.length ? el("div", { class: "row" }, actions) : null,
    el("button", { type: "button", class: "btn-quiet", onclick: () => { box.hidden = true; following = null; } }, t("Close")),
  ].filter(Boolean));
  box.hidden = false;
  box.scrollIntoView({ behavior: "smooth", block: "start" });
}
