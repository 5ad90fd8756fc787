// The browser's realtime client: the same semantics as realtime/client.py (docs/realtime.md).
//
//  - connect to /ws with the page's session cookie (no token in the page);
//  - keep the last (epoch, seq) of every topic; after a drop reconnect with exponential backoff and
//    jitter, with auto=0, and subscribe every topic again from its last position, so the server
//    replays exactly what was missed, or answers `resync` (then the page refetches that topic's state);
//  - apply each event once: an event whose seq is not above the last one applied is dropped;
//  - answer the server's pings; treat ~2.5 heartbeats of silence as a dead link; go offline at once
//    when the browser says it is offline, and reconnect at once when it says it is back.
//
// Usage:
//   const rt = new Realtime({ gate: "main" });
//   rt.on("unit:…", (event) => …, () => refetch());   // handler per topic, resync handler
//   rt.onStatus((state) => …);                         // "connecting" | "online" | "offline"
//   rt.start();

const FATAL = new Set([4000, 4001, 4003, 4403]);

export class Realtime {
  constructor({ gate = null, minBackoff = 250, maxBackoff = 8000, path = "/ws" } = {}) {
    this.gate = gate;
    this.minBackoff = minBackoff;
    this.maxBackoff = maxBackoff;
    this.path = path;
    this.positions = new Map(); // topic -> {epoch, seq}
    this.handlers = new Map(); // topic -> {onEvent, onResync}
    this.typeHandlers = []; // [prefix, fn]: every topic starting with prefix (personal unit topics)
    this.statusListeners = [];
    this.welcome = null;
    this.state = "connecting";
    this.ws = null;
    this.backoff = minBackoff;
    this.first = true;
    this.stopped = false;
    this.silenceTimer = null;
    this.retryTimer = null;
    this.connects = 0;
    window.addEventListener("offline", () => this._dropForOffline());
    window.addEventListener("online", () => this._reconnectNow());
  }

  /** Handle a topic's events; `onResync` refetches its state. Subscribes if connected. */
  on(topic, onEvent, onResync) {
    this.handlers.set(topic, { onEvent, onResync });
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.welcome) this._subscribe(topic);
  }

  /** Handle events of every topic whose name starts with `prefix` (e.g. "unit:" for all my units). */
  onPrefix(prefix, onEvent, onResync) {
    this.typeHandlers.push([prefix, onEvent, onResync]);
  }

  onStatus(listener) {
    this.statusListeners.push(listener);
    listener(this.state);
  }

  start() {
    this.stopped = false;
    this._open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.silenceTimer);
    if (this.ws) this.ws.close(1000);
  }

  get personalTopics() {
    return this.welcome ? this.welcome.personal_topics : [];
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const listener of this.statusListeners) listener(state);
  }

  _url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams();
    if (!this.first) params.set("auto", "0");
    if (this.gate) params.set("gate", this.gate);
    const query = params.toString();
    return `${scheme}//${location.host}${this.path}${query ? `?${query}` : ""}`;
  }

  _open() {
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this._setState("offline");
      return;
    }
    let ws;
    try {
      ws = new WebSocket(this._url());
    } catch {
      this._scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (message) => this._onFrame(ws, message.data);
    ws.onclose = (close) => this._onClose(ws, close.code);
    ws.onerror = () => {};
  }

  _onClose(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.silenceTimer);
    if (FATAL.has(code)) {
      this.stopped = true;
      this._setState("offline");
      if (code === 4001 || code === 4003) window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    this._setState(navigator.onLine === false ? "offline" : "connecting");
    this._scheduleRetry();
  }

  _scheduleRetry() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const delay = this.backoff * (0.5 + Math.random());
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this.retryTimer = setTimeout(() => this._open(), delay);
  }

  _dropForOffline() {
    this._setState("offline");
    clearTimeout(this.retryTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  _reconnectNow() {
    if (this.stopped || this.ws) return;
    this.backoff = this.minBackoff;
    clearTimeout(this.retryTimer);
    this._setState("connecting");
    this._open();
  }

  _armSilenceTimer() {
    clearTimeout(this.silenceTimer);
    const heartbeat = (this.welcome?.heartbeat_seconds || 20) * 1000;
    this.silenceTimer = setTimeout(() => {
      // Nothing heard for ~2.5 heartbeats: the link is dead even if the socket does not know it yet.
      const ws = this.ws;
      this.ws = null;
      if (ws) {
        ws.onclose = null;
        ws.close(4009);
      }
      this._setState("connecting");
      this._scheduleRetry();
    }, heartbeat * 2.5);
  }

  _send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  _subscribe(topic) {
    const position = this.positions.get(topic);
    const message = { op: "subscribe", topic };
    if (position) {
      message.last_seq = position.seq;
      message.epoch = position.epoch;
    }
    this._send(message);
  }

  _topicsToHold() {
    const topics = new Set(this.handlers.keys());
    for (const topic of this.personalTopics) topics.add(topic);
    for (const topic of this.positions.keys()) topics.add(topic);
    return topics;
  }

  _onFrame(ws, data) {
    if (ws !== this.ws) return;
    this._armSilenceTimer();
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) this._onMessage(message);
  }

  _onMessage(message) {
    switch (message.op) {
      case "welcome": {
        const wasFirst = this.first;
        this.welcome = message;
        this.first = false;
        this.connects += 1;
        this.backoff = this.minBackoff;
        this._setState("online");
        // On the first connection the server subscribed the personal topics itself (auto=1).
        const personal = new Set(message.personal_topics);
        for (const topic of this._topicsToHold()) {
          if (!(wasFirst && personal.has(topic))) this._subscribe(topic);
        }
        break;
      }
      case "event":
        this._onEvent(message);
        break;
      case "subscribed":
        // With missed > 0 the replayed events follow and move the position themselves.
        if (message.missed === 0 || !this.positions.has(message.topic)) {
          this.positions.set(message.topic, { epoch: message.epoch, seq: message.seq });
        }
        break;
      case "resync":
        this.positions.set(message.topic, { epoch: message.epoch, seq: message.seq });
        this._resync(message.topic);
        break;
      case "ping":
        this._send({ op: "pong" });
        break;
      default:
        break;
    }
  }

  _onEvent(event) {
    const position = this.positions.get(event.topic);
    if (position && position.epoch === event.epoch && event.seq <= position.seq) return; // already applied
    this.positions.set(event.topic, { epoch: event.epoch, seq: event.seq });
    for (const fn of this._handlersFor(event.topic, 1)) fn(event);
  }

  _resync(topic) {
    for (const fn of this._handlersFor(topic, 2)) fn(topic);
  }

  _handlersFor(topic, index) {
    const found = [];
    const exact = this.handlers.get(topic);
    if (exact) {
      const fn = index === 1 ? exact.onEvent : exact.onResync;
      if (fn) found.push(fn);
    }
    for (const entry of this.typeHandlers) {
      if (topic.startsWith(entry[0]) && entry[index]) found.push(entry[index]);
    }
    return found;
  }
}
