// Agents (with their switches), workers (live from heartbeats), queues, and job rates over time.
import { api } from "./api.js";
import { $, ago, badge, bytes, el, num } from "./util.js";

const BUCKET_S = 5;
const WINDOW_S = 15 * 60;

export class Agents {
  constructor(container) {
    this.container = container;
    this.busy = new Set();
  }

  async load() {
    let agents;
    try {
      agents = await api("/agents");
    } catch (error) {
      this.container.replaceChildren(el("p", { class: "empty", text: `agents unavailable: ${error.message}` }));
      return;
    }
    this.container.replaceChildren(...agents.map((a) => this.card(a)));
  }

  card(a) {
    const toggle = el("input", { type: "checkbox", class: "switch", role: "switch", checked: a.enabled,
      "aria-label": `${a.name} agent enabled`, dataset: { agent: a.name }, disabled: this.busy.has(a.name) });
    toggle.addEventListener("change", () => this.flip(a.name, toggle));
    const breakers = (a.breakers ?? []).map((b) => `${b.source}: ${b.state}`).join(", ");
    return el("div", { class: "agent", dataset: { agent: a.name, enabled: String(a.enabled) } },
      el("div", { class: "name" }, a.name, toggle),
      el("div", { class: "facts", text: `${a.enabled ? "enabled" : "disabled"} · queue ${a.queue_depth}` +
        (a.queue_depth_low ? ` (+${a.queue_depth_low} low)` : "") + ` · ${a.workers.length} worker(s)` }),
      breakers ? el("div", { class: "facts", text: `breakers: ${breakers}` }) : null);
  }

  async flip(name, toggle) {
    this.busy.add(name);
    toggle.disabled = true;
    try {
      const agent = await api(`/agents/${name}`, { method: "PUT", body: { enabled: toggle.checked } });
      this.busy.delete(name);
      this.container.querySelector(`[data-agent="${name}"].agent`)?.replaceWith(this.card(agent));
    } catch (error) {
      this.busy.delete(name);
      toggle.checked = !toggle.checked;
      toggle.disabled = false;
      toggle.closest(".agent").append(el("div", { class: "facts error", text: `not changed: ${error.message}` }));
    }
  }
}

export class Workers {
  constructor() {
    this.workers = new Map(); // name -> latest heartbeat (or /workers row mapped to one)
    this.rows = $("#worker-rows");
    this.last = new Map(); // name -> {done, failed}: to turn counters into rates
    this.buckets = new Map(); // bucket start (s) -> [ok, failed]
    this.plot = null;
  }

  async load() {
    let rows;
    try {
      rows = await api("/workers");
    } catch {
      return;
    }
    const names = new Set(rows.map((w) => w.name));
    for (const name of [...this.workers.keys()]) if (!names.has(name)) this.workers.delete(name);
    for (const w of rows) {
      const known = this.workers.get(w.name);
      const at = w.last_heartbeat ? Date.parse(w.last_heartbeat) / 1000 : null;
      if (known && known.at >= (at ?? 0)) continue;
      this.workers.set(w.name, { worker: w.name, state: w.state, current_job: w.current_job, rss_bytes: w.rss_bytes,
        cpu_seconds: w.cpu_seconds, jobs_done: w.successful_jobs, failures: w.failed_jobs, last_job_ms: w.last_job_ms, at });
    }
    this.render();
  }

  heartbeat(hb) {
    const before = this.last.get(hb.worker);
    if (before && hb.jobs_done >= before.done && hb.failures >= before.failed) {
      const start = Math.floor(hb.at / BUCKET_S) * BUCKET_S;
      const b = this.buckets.get(start) ?? [0, 0];
      b[0] += hb.jobs_done - before.done;
      b[1] += hb.failures - before.failed;
      this.buckets.set(start, b);
    }
    this.last.set(hb.worker, { done: hb.jobs_done, failed: hb.failures });
    this.workers.set(hb.worker, hb);
    this.render();
  }

  render() {
    if (!this.workers.size) {
      this.rows.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty", text: "No workers yet." })));
      return;
    }
    this.rows.replaceChildren(...[...this.workers.values()].sort((a, b) => a.worker.localeCompare(b.worker)).map((w) =>
      el("tr", { dataset: { worker: w.worker } }, el("td", { class: "mono", text: w.worker }), el("td", {}, badge(w.state)),
        el("td", { class: "mono", text: w.current_job ?? "–" }), el("td", { class: "num", text: bytes(w.rss_bytes) }),
        el("td", { class: "num", text: num(w.cpu_seconds, 1) }), el("td", { class: "num", text: w.jobs_done ?? "–" }),
        el("td", { class: "num", text: w.failures ?? "–" }),
        el("td", { class: "num", text: w.last_job_ms === null || w.last_job_ms === undefined ? "–" : `${num(w.last_job_ms, 0)} ms` }),
        el("td", { text: ago(w.at) }))));
  }

  // Success and failure rates per bucket over the last WINDOW_S seconds.
  drawRates(container) {
    const now = Math.floor(Date.now() / 1000 / BUCKET_S) * BUCKET_S;
    const x = [], ok = [], bad = [];
    for (let t = now - WINDOW_S; t <= now; t += BUCKET_S) {
      const b = this.buckets.get(t);
      x.push(t); ok.push(b ? b[0] / BUCKET_S : 0); bad.push(b ? b[1] / BUCKET_S : 0);
    }
    for (const t of this.buckets.keys()) if (t < now - WINDOW_S) this.buckets.delete(t);
    if (!this.plot) {
      const axis = { stroke: "#8a9bb8", grid: { stroke: "#1f2a44", width: 1 }, ticks: { stroke: "#24314f" } };
      this.plot = new uPlot({
        width: Math.max(280, container.clientWidth), height: 220, scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } },
        axes: [axis, { ...axis, size: 50 }],
        series: [{}, { label: "succeeded/s", stroke: "#22c55e", fill: "rgba(34,197,94,.12)", width: 1.5, value: (u, v) => num(v) },
          { label: "failed/s", stroke: "#ef4444", fill: "rgba(239,68,68,.12)", width: 1.5, value: (u, v) => num(v) }],
      }, [x, ok, bad], container);
      new ResizeObserver(() => this.plot.setSize({ width: Math.max(280, container.clientWidth), height: 220 })).observe(container);
    } else {
      this.plot.setData([x, ok, bad]);
    }
  }
}

export async function loadQueues() {
  let queues;
  try {
    queues = await api("/queues");
  } catch (error) {
    $("#queue-rows").replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "empty", text: error.message })));
    return;
  }
  $("#queue-rows").replaceChildren(...queues.map((q) => el("tr", { dataset: { queue: q.name } },
    el("td", { class: "mono", text: q.name }),
    ...["depth", "started", "scheduled", "deferred", "finished", "failed", "canceled"].map((k) =>
      el("td", { class: "num", text: q[k] })))));
}
