// The pages' HTTP client: same-origin fetch with the session cookie, the CSRF token on every write,
// problem details (RFC 9457) turned into ApiError, and Idempotency-Key support for retried actions.
const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
  /** The message for one field, when the server named it. */
  fieldMessage(field) {
    return (this.problem.errors || []).find((e) => e.field === field)?.message;
  }
}

/** A network failure: the request may or may not have reached the server. */
export class NetworkError extends Error {}

export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

/**
 * api("/api/visitors/feeds/pending") -> parsed JSON.
 * Options: method, json (an object to send as JSON), form (a FormData), idempotencyKey, signal.
 */
export async function api(path, options = {}) {
  const method = (options.method || (options.json || options.form ? "POST" : "GET")).toUpperCase();
  const headers = { Accept: "application/json" };
  let body;
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin", signal: options.signal });
  } catch (error) {
    throw new NetworkError(String(error));
  }
  if (response.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof payload === "object" ? payload : { detail: payload });
  return payload;
}

/** The items of a list answer, whether it is a bare list or a page ({items, total, ...}). */
export function itemsOf(answer) {
  if (Array.isArray(answer)) return answer;
  return answer?.items || [];
}

/** Every item of a list endpoint (a snapshot the page applies live events to), page by page of 500. */
export async function allItems(path) {
  const items = [];
  const joiner = path.includes("?") ? "&" : "?";
  for (;;) {
    const page = await api(`${path}${joiner}limit=500&offset=${items.length}`);
    const got = itemsOf(page);
    items.push(...got);
    if (Array.isArray(page) || !got.length || items.length >= (page?.total ?? 0)) return items;
  }
}
