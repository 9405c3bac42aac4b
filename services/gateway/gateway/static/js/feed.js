// The bang feed: newest first, every symbol.
import { el, num, time } from "./util.js";

const MAX_ITEMS = 300;

export class Feed {
  constructor(list, counter, { onPick }) {
    Object.assign(this, { list, counter, onPick });
    this.total = 0;
  }

  add(events, { flash = true } = {}) {
    if (!events.length) return;
    this.list.querySelector(".empty")?.remove();
    const sorted = [...events].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.id - b.id));
    for (const e of sorted) {
      const item = el("li", { class: flash ? "fresh" : null, dataset: { id: e.id, symbol: e.symbol, ts: e.ts },
                              title: `EMA ${num(e.ema_fast)} / ${num(e.ema_mid)} / ${num(e.ema_slow)}`,
                              onclick: () => this.onPick(e.symbol) },
        el("span", { class: "sym", text: e.symbol }),
        el("span", {}, `${e.from_state} `, el("span", { class: `arrow ${e.to_state}`, text: `→ ${e.to_state}` })),
        el("span", { class: "px", text: num(e.price, 4) }),
        el("span", { class: "when", text: `${time(e.ts)} · #${e.id}` }));
      this.insert(item, e);
      this.total++;
    }
    while (this.list.children.length > MAX_ITEMS) this.list.lastElementChild.remove();
    this.counter.textContent = String(this.total);
  }

  // Keep the list in bar-time order (newest on top), whatever order events come in.
  insert(item, e) {
    for (const other of this.list.children) {
      if (other.dataset.ts < e.ts || (other.dataset.ts === e.ts && Number(other.dataset.id) < e.id)) {
        this.list.insertBefore(item, other);
        return;
      }
    }
    this.list.append(item);
  }
}
