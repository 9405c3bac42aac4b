// The live stream (WS /ws): one filter, resume cursor kept across reloads, reconnects with backoff.
// Protocol: see the gateway's gateway/ws.py docstring.

const CURSOR_KEY = "agentsys.bangCursor";
const SEEN_MAX = 20000;

export class Live {
  constructor({ onBangs, onUpdate, onTask, onHeartbeat, onStatus }) {
    Object.assign(this, { onBangs, onUpdate, onTask, onHeartbeat, onStatus });
    this.filter = { kinds: ["bang", "update", "task", "heartbeat"], symbols: { bang: null, update: [] } };
    this.cursor = sessionStorage.getItem(CURSOR_KEY);
    this.seen = new Set();
    this.delay = 500;
    this.received = 0;
    this.ws = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.onStatus("connecting", "connecting…");
    ws.onopen = () => {
      this.delay = 500;
      this.onStatus("open", "live");
      this.send({ type: "subscribe", ...this.filter });
      this.backfillFrom = this.cursor;
      this.send({ type: "backfill", cursor: this.backfillFrom, after: null });
    };
    ws.onmessage = (event) => this.handle(JSON.parse(event.data));
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      const why = event.code === 4008 ? "fell behind; reconnecting…" : "disconnected; reconnecting…";
      this.onStatus("closed", why);
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  setUpdateSymbols(symbols) {
    this.filter.symbols.update = [...symbols];
    this.send({ type: "subscribe", ...this.filter });
  }

  keepCursor(cursor) {
    if (cursor === null || cursor === undefined) return;
    this.cursor = cursor;
    sessionStorage.setItem(CURSOR_KEY, cursor);
  }

  fresh(events) {
    const out = events.filter((e) => !this.seen.has(e.id));
    for (const e of out) this.seen.add(e.id);
    if (this.seen.size > SEEN_MAX) this.seen = new Set([...this.seen].slice(-SEEN_MAX / 2));
    return out;
  }

  handle(msg) {
    this.received++;
    switch (msg.kind) {
      case "bang": {
        const events = this.fresh(msg.events);
        if (events.length) this.onBangs(events, "live");
        this.keepCursor(msg.cursor);
        break;
      }
      case "backfill": {
        const events = this.fresh(msg.events);
        if (events.length) this.onBangs(events, "backfill");
        this.keepCursor(msg.cursor);
        if (msg.after) this.send({ type: "backfill", cursor: this.backfillFrom, after: msg.after });
        break;
      }
      case "update": this.onUpdate(msg); break;
      case "task": this.onTask(msg); break;
      case "heartbeat": this.onHeartbeat(msg); break;
      case "error": console.warn("live stream refused a request:", msg.error); break;
      default: break; // hello, subscribed, pong
    }
  }
}
