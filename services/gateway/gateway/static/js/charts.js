// One live chart per selected symbol: price, three EMAs and bang markers (uPlot, served from our origin).
import { api } from "./api.js";
import { el, num, seconds } from "./util.js";

const MAX_POINTS = 2000;
const COLORS = { price: "#e2e8f0", fast: "#f59e0b", mid: "#a78bfa", slow: "#38bdf8", bull: "#22c55e", bear: "#ef4444" };

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

class SymbolChart {
  constructor(symbol, onClose) {
    this.symbol = symbol;
    this.x = []; this.price = []; this.fast = []; this.mid = []; this.slow = []; this.bull = []; this.bear = [];
    this.bangIds = new Set();
    this.periods = null;
    this.last = el("span", { class: "last" });
    this.state = el("span", { class: "state" });
    this.count = el("span", { class: "nbangs" });
    this.body = el("div", { class: "chart-body" });
    this.node = el("article", { class: "chart", dataset: { symbol } },
      el("div", { class: "chart-head" }, el("span", { class: "sym", text: symbol }), this.last, this.state, this.count,
        el("button", { type: "button", class: "ghost close", title: `remove ${symbol}`, text: "✕",
          onclick: () => onClose(symbol) })),
      this.body);
    this.plot = null;
    this.pending = false;
  }

  mount() {
    const width = Math.max(300, this.body.clientWidth);
    const line = (label, stroke, width = 1.25) => ({ label, stroke, width, spanGaps: true, value: (u, v) => num(v),
      points: { show: false } });
    const marker = (label, color) => ({
      label, stroke: color, fill: color, width: 0, paths: () => null, points: { show: false },
      value: (u, v) => (v === null ? "–" : num(v)),
    });
    const axis = { stroke: css("--muted") || "#8a9bb8", grid: { stroke: "#1f2a44", width: 1 }, ticks: { stroke: "#24314f" } };
    const p = this.periods;
    this.plot = new uPlot({
      width, height: 210, cursor: { drag: { x: true, y: false } }, legend: { live: true },
      scales: { x: { time: true } }, hooks: { draw: [(u) => this.drawMarkers(u)] },
      axes: [{ ...axis }, { ...axis, size: 60 }],
      series: [{}, line("price", COLORS.price, 1.5),
        line(p ? `EMA ${p.fast}` : "EMA fast", COLORS.fast), line(p ? `EMA ${p.mid}` : "EMA mid", COLORS.mid),
        line(p ? `EMA ${p.slow}` : "EMA slow", COLORS.slow), marker("▲ BULL", COLORS.bull), marker("▼ BEAR", COLORS.bear)],
    }, this.data(), this.body);
    new ResizeObserver(() => {
      const w = Math.max(300, this.body.clientWidth);
      if (this.plot && Math.abs(this.plot.width - w) > 2) this.plot.setSize({ width: w, height: 210 });
    }).observe(this.body);
  }

  // Bangs as triangles: up (BULL) below the price, down (BEAR) above it.
  drawMarkers(u) {
    const ctx = u.ctx, r = 7 * devicePixelRatio;
    ctx.save();
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.strokeStyle = "#0b1120";
    for (const [values, color, up, idx] of [[this.bull, COLORS.bull, true, 5], [this.bear, COLORS.bear, false, 6]]) {
      if (!u.series[idx].show) continue;
      ctx.fillStyle = color;
      for (let i = 0; i < values.length; i++) {
        if (values[i] === null || values[i] === undefined) continue;
        const x = u.valToPos(this.x[i], "x", true), y = u.valToPos(values[i], "y", true);
        const tip = up ? y + 4 * devicePixelRatio : y - 4 * devicePixelRatio, base = up ? tip + r * 1.6 : tip - r * 1.6;
        ctx.beginPath();
        ctx.moveTo(x, tip); ctx.lineTo(x - r, base); ctx.lineTo(x + r, base); ctx.closePath();
        ctx.fill(); ctx.stroke();
      }
    }
    ctx.restore();
  }

  data() {
    return [this.x, this.price, this.fast, this.mid, this.slow, this.bull, this.bear];
  }

  // Index of ts in x, inserting an empty point in order when it is new.
  slot(ts) {
    let lo = 0, hi = this.x.length;
    if (hi && this.x[hi - 1] < ts) lo = hi;
    else while (lo < hi) { const m = (lo + hi) >> 1; if (this.x[m] < ts) lo = m + 1; else hi = m; }
    if (this.x[lo] !== ts) for (const arr of this.data()) arr.splice(lo, 0, arr === this.x ? ts : null);
    return lo;
  }

  point(p, live = false) {
    const ts = seconds(p.ts), n = this.x.length;
    // Updates carry each commit's last bar: a jump past the usual bar interval means bars in between.
    if (live && (n < 2 || ts - this.x[n - 1] > 1.5 * (this.x[n - 1] - this.x[n - 2]))) this.gap = true;
    const i = this.slot(ts);
    if (p.price !== undefined && p.price !== null) this.price[i] = p.price;
    if ("ema_fast" in p) { this.fast[i] = p.ema_fast; this.mid[i] = p.ema_mid; this.slow[i] = p.ema_slow; }
    if (p.state) this.showState(p.state);
    if (i === this.x.length - 1 && this.price[i] !== null) this.last.textContent = num(this.price[i], 4);
  }

  bang(e) {
    if (this.bangIds.has(e.id)) return;
    this.bangIds.add(e.id);
    const i = this.slot(seconds(e.ts));
    if (this.price[i] === null) this.price[i] = e.price;
    (e.to_state === "BULL" ? this.bull : this.bear)[i] = e.price;
    this.node.dataset.bangIds = [...this.bangIds].join(",");
    this.count.textContent = `${this.bangIds.size} bang${this.bangIds.size === 1 ? "" : "s"}`;
  }

  showState(state) {
    this.state.textContent = state;
    this.state.className = `state ${state}`;
  }

  trim() {
    const extra = this.x.length - MAX_POINTS;
    if (extra > 0) for (const arr of this.data()) arr.splice(0, extra);
  }

  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.trim();
      this.plot?.setData(this.data());
    });
  }

  // Fill gaps from the history (cached by the API), at most once a second while updates come.
  refill() {
    if (!this.gap || this.refilling) return;
    this.refilling = setTimeout(async () => {
      this.gap = false;
      try {
        const history = await this.history();
        for (const p of history.prices) this.point(p);
        for (const b of history.bangs) this.bang(b);
        this.redraw();
      } catch { /* the next update tries again */ } finally {
        this.refilling = null;
        this.refill();
      }
    }, 1000);
  }

  history() {
    return api(`/symbols/${encodeURIComponent(this.symbol).replace(/%2F/g, "/")}/history?limit=500`);
  }

  async load() {
    const history = await this.history();
    this.gap = false;  // what came before is in it
    this.periods = history.periods;
    for (const p of history.prices) this.point(p);
    for (const b of history.bangs) this.bang(b);
    this.mount();
  }
}

export class Charts {
  constructor(container, { onChange }) {
    this.container = container;
    this.charts = new Map();
    this.onChange = onChange;
  }

  symbols() {
    return [...this.charts.keys()];
  }

  async add(symbol) {
    if (this.charts.has(symbol)) return;
    const chart = new SymbolChart(symbol, (s) => this.remove(s));
    this.charts.set(symbol, chart);
    this.container.querySelector(".empty")?.remove();
    this.container.append(chart.node);
    this.onChange(this.symbols());
    try {
      await chart.load();
    } catch (error) {
      chart.body.replaceChildren(el("p", { class: "empty", text: `history unavailable: ${error.message}` }));
    }
  }

  remove(symbol) {
    const chart = this.charts.get(symbol);
    if (!chart) return;
    chart.plot?.destroy();
    chart.node.remove();
    this.charts.delete(symbol);
    if (!this.charts.size) this.container.append(el("p", { class: "empty", text: "No symbols selected." }));
    this.onChange(this.symbols());
  }

  update(msg) {
    for (const [symbol, p] of Object.entries(msg.symbols)) {
      const chart = this.charts.get(symbol);
      if (chart) { chart.point(p, true); chart.redraw(); chart.refill(); }
    }
  }

  bangs(events) {
    for (const e of events) {
      const chart = this.charts.get(e.symbol);
      if (chart) { chart.bang(e); chart.redraw(); }
    }
  }
}
