// The dashboard: charts, bang feed, tasks, agents, workers and queues, live over one WebSocket.
import { api, setupToken } from "./api.js";
import { Charts } from "./charts.js";
import { Feed } from "./feed.js";
import { Live } from "./live.js";
import { Agents, Workers, loadQueues } from "./ops.js";
import { Tasks } from "./tasks.js";
import { $, el, every } from "./util.js";

const SYMBOLS_KEY = "agentsys.chartSymbols";
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._/-]{0,31}$/;

function banner(text) {
  const node = $("#banner");
  node.textContent = text;
  node.hidden = !text;
}

async function universe() {
  try {
    const page = await api("/symbols?limit=10000");
    const names = page.items.map((s) => s.symbol);
    $("#symbol-list").replaceChildren(...names.map((s) => el("option", { value: s })));
    return new Set(names);
  } catch (error) {
    banner(`The orchestrator is not answering (${error.message}); live events still flow.`);
    return new Set();
  }
}

async function main() {
  if (typeof uPlot === "undefined") {
    banner("The charting library is missing: run `make setup` (it installs uPlot into the gateway's static/vendor).");
    return;
  }
  setupToken();
  let known = await universe();

  let live = null;
  const charts = new Charts($("#charts"), {
    onChange(symbols) {
      localStorage.setItem(SYMBOLS_KEY, JSON.stringify(symbols));
      live?.setUpdateSymbols(symbols);
    },
  });
  async function pick(symbol) {
    symbol = symbol.trim().toUpperCase();
    $("#symbol-note").textContent = "";
    if (!SYMBOL_RE.test(symbol)) { $("#symbol-note").textContent = "not a symbol"; return; }
    if (!known.has(symbol)) known = await universe(); // it may be new since the page loaded
    if (!known.has(symbol)) { $("#symbol-note").textContent = `${symbol} is not in the universe`; return; }
    await charts.add(symbol);
  }
  const feed = new Feed($("#feed"), $("#feed-count"), { onPick: pick });
  const tasks = new Tasks();
  const agents = new Agents($("#agents"));
  const workers = new Workers();

  live = new Live({
    onBangs(events, source) { feed.add(events, { flash: source === "live" }); charts.bangs(events); },
    onUpdate(msg) { charts.update(msg); },
    onTask(msg) { tasks.live(msg); },
    onHeartbeat(msg) { workers.heartbeat(msg); },
    onStatus(state, label) {
      const node = $("#live-status");
      node.dataset.state = state;
      node.querySelector(".label").textContent = label;
    },
  });
  let stored = [];
  try { stored = JSON.parse(localStorage.getItem(SYMBOLS_KEY) ?? "[]"); } catch { stored = []; }
  const initial = stored.filter((s) => known.has(s));
  live.filter.symbols.update = initial.length ? initial : [...known].slice(0, 2);
  live.connect();

  $("#symbol-form").addEventListener("submit", (e) => { e.preventDefault(); pick($("#symbol-input").value); $("#symbol-input").value = ""; });
  await Promise.all(live.filter.symbols.update.map((s) => charts.add(s)));
  try {
    const recent = await api("/events?limit=50");
    const fresh = live.fresh(recent);
    feed.add(fresh, { flash: false });
    charts.bangs(fresh);
  } catch { /* the live stream's backfill fills the feed too */ }

  tasks.load();
  every(5000, () => agents.load());
  every(5000, loadQueues);
  every(15000, () => workers.load());
  every(5000, () => workers.drawRates($("#rates-chart")));
  let seen = 0;
  every(2000, () => {
    const rate = (live.received - seen) / 2;
    seen = live.received;
    $("#live-meta").textContent = `${rate.toFixed(1)} msg/s · cursor ${live.cursor ?? "–"}`;
  });
  window.dashboard = { charts, feed, tasks, agents, workers, live }; // for tests and the console
}

main();
