// Actions taken while offline: kept in localStorage with an idempotency key and sent once when back.
//
// Each queued action is sent with its own Idempotency-Key, so a send that reached the server but whose
// answer was lost is answered from the server's record on the retry, never done twice. Actions that
// cannot wait (they need an answer now) are refused while offline by the page instead of being queued.
import { api, ApiError, NetworkError, newKey } from "./api.js";

export class Outbox {
  constructor(name, { onChange = () => {}, onDone = () => {}, onFailed = () => {} } = {}) {
    this.storageKey = `opshub.outbox.${name}`;
    this.onChange = onChange;
    this.onDone = onDone;
    this.onFailed = onFailed;
    this.flushing = false;
  }

  get items() {
    try {
      return JSON.parse(localStorage.getItem(this.storageKey) || "[]");
    } catch {
      return [];
    }
  }

  _save(items) {
    localStorage.setItem(this.storageKey, JSON.stringify(items));
    this.onChange(items);
  }

  /** Send now if possible; when the network is down, queue it. Resolves to the answer or {queued: true}. */
  async send(action) {
    const item = { key: newKey(), createdAt: new Date().toISOString(), ...action };
    if (navigator.onLine === false) {
      this._save([...this.items, item]);
      return { queued: true, item };
    }
    try {
      return await api(item.path, { method: item.method, json: item.json, idempotencyKey: item.key });
    } catch (error) {
      if (error instanceof NetworkError) {
        this._save([...this.items, item]);
        return { queued: true, item };
      }
      throw error;
    }
  }

  /** Send every queued action in order, each once; stops at the first network failure. */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const item of this.items) {
        try {
          const answer = await api(item.path, { method: item.method, json: item.json, idempotencyKey: item.key });
          this.onDone(item, answer);
        } catch (error) {
          if (error instanceof NetworkError) return;
          if (error instanceof ApiError && error.status === 409 && error.problem?.type?.endsWith("in-progress")) return;
          this.onFailed(item, error);
        }
        this._save(this.items.filter((other) => other.key !== item.key));
      }
    } finally {
      this.flushing = false;
    }
  }
}
