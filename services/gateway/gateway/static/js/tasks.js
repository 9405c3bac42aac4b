// Tasks: a filtered, cursor-paginated table (served by GET /tasks), a live stream, and a detail view.
import { api } from "./api.js";
import { $, badge, clock, duration, el, shortId, time } from "./util.js";

const PAGE = 25;
const ENDED = new Set(["finished", "failed", "canceled", "stopped"]);
const STREAM_MAX = 100;

function progress(p) {
  const pct = Math.round((p ?? 0) * 100);
  return el("span", { title: `${pct}%` }, el("span", { class: "bar" }, el("i", { style: `width:${pct}%` })), ` ${pct}%`);
}

function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : null; // datetime-local is the browser's time zone
}

export class Tasks {
  constructor() {
    this.rows = $("#task-rows");
    this.form = $("#task-filters");
    this.cursors = [null]; // cursor of each page shown so far
    this.page = 0;
    this.next = null;
    this.shown = new Map();
    this.detailId = null;
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.reset(); });
    this.form.addEventListener("reset", () => setTimeout(() => this.reset()));
    $("#tasks-older").addEventListener("click", () => { this.cursors[this.page + 1] = this.next; this.page++; this.load(); });
    $("#tasks-newer").addEventListener("click", () => { this.page--; this.load(); });
    $("#tasks-refresh").addEventListener("click", () => this.load());
    $("#detail-cancel").addEventListener("click", () => this.act("cancel"));
    $("#detail-retry").addEventListener("click", () => this.act("retry"));
    $("#task-detail").addEventListener("close", () => { this.detailId = null; });
  }

  reset() {
    this.cursors = [null];
    this.page = 0;
    return this.load();
  }

  query() {
    const f = new FormData(this.form);
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const name of ["state", "type", "worker"]) if (f.get(name)) q.set(name, f.get(name).trim());
    const since = isoFromLocal(f.get("since")), until = isoFromLocal(f.get("until"));
    if (since) q.set("since", since);
    if (until) q.set("until", until);
    if (this.cursors[this.page]) q.set("cursor", this.cursors[this.page]);
    return q;
  }

  async load() {
    let page;
    try {
      page = await api(`/tasks?${this.query()}`);
    } catch (error) {
      this.rows.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty", text: error.message })));
      return;
    }
    this.next = page.next_cursor;
    this.shown.clear();
    this.rows.replaceChildren(...page.items.map((t) => this.row(t)));
    if (!page.items.length) this.rows.append(el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No tasks." })));
    $("#tasks-page").textContent = `page ${this.page + 1}`;
    $("#tasks-newer").disabled = this.page === 0;
    $("#tasks-older").disabled = !this.next;
  }

  row(t) {
    const tr = el("tr", { class: "clickable", dataset: { id: t.id }, onclick: () => this.open(t.id) },
      el("td", { class: "mono", text: time(t.created_at) }), el("td", { class: "mono", title: t.id, text: shortId(t.id) }),
      el("td", { text: t.type }), el("td", {}, badge(t.state)), el("td", {}, progress(t.progress)),
      el("td", { class: "mono", text: t.worker ?? "–" }),
      el("td", { class: "num", text: t.started_at ? duration(t.started_at, t.ended_at) : "–" }));
    this.shown.set(t.id, tr);
    return tr;
  }

  // A state change from the live stream: into the stream list, and into the table when shown.
  live(msg) {
    const list = $("#task-stream");
    list.querySelector(".empty")?.remove();
    list.prepend(el("li", { dataset: { id: msg.id }, onclick: () => this.open(msg.id) },
      el("span", { class: "when", text: clock(msg.at) }), el("span", { class: "mono", text: shortId(msg.id) }),
      el("span", { text: msg.type }), badge(msg.state), msg.progress > 0 && !ENDED.has(msg.state) ? progress(msg.progress) : null));
    while (list.children.length > STREAM_MAX) list.lastElementChild.remove();
    const tr = this.shown.get(msg.id);
    if (tr) {
      tr.children[3].replaceChildren(badge(msg.state));
      tr.children[4].replaceChildren(progress(msg.progress));
      if (msg.worker) tr.children[5].textContent = msg.worker;
    } else if (this.page === 0 && !this.form.state.value && !this.form.type.value && !this.form.worker.value) {
      this.soon();
    }
    if (msg.id === this.detailId) this.open(msg.id);
  }

  soon() { // new tasks on the first page: refresh at most once a second
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.load(); }, 1000);
  }

  async open(id) {
    this.detailId = id;
    const dialog = $("#task-detail");
    let t;
    try {
      t = await api(`/tasks/${encodeURIComponent(id)}?traceback=true`);
    } catch (error) {
      $("#detail-body").replaceChildren(el("p", { class: "error", text: error.message }));
      if (!dialog.open) dialog.showModal();
      return;
    }
    $("#detail-title").replaceChildren(`${t.type} `, el("span", { class: "mono", text: t.id }), " ", badge(t.state));
    const json = (v) => el("pre", { text: JSON.stringify(v, null, 2) });
    const tb = t.traceback;
    const body = [
      el("h3", { text: "Timings" }),
      el("dl", {}, ...[["created", time(t.created_at)], ["enqueued", time(t.enqueued_at)], ["started", time(t.started_at)],
        ["ended", time(t.ended_at)], ["waited in queue", duration(t.enqueued_at, t.started_at ?? t.ended_at)],
        ["ran for", t.started_at ? duration(t.started_at, t.ended_at) : "–"], ["attempts", t.attempts],
        ["worker", t.worker ?? "–"], ["queue", t.queue ?? "–"], ["priority", t.priority],
        ["progress", `${Math.round(t.progress * 100)}%`]].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])),
      el("h3", { text: "Arguments" }), json(t.params),
      el("h3", { text: "Result" }), json(t.result),
    ];
    if (t.error) body.push(el("h3", { text: "Error" }), el("pre", { class: "error", text: t.error }));
    if (tb) {
      body.push(el("h3", { text: "Traceback" }));
      if (tb.exception) body.push(el("p", { class: "error mono", text: tb.exception }));
      if (Array.isArray(tb.frames) && tb.frames.length) {
        body.push(el("ol", { class: "frames" }, tb.frames.map((f) => el("li", {}, `${f.file}:${f.line} in ${f.function}`,
          f.code ? el("span", { class: "code", text: f.code }) : null))));
      } else body.push(json(tb));
    }
    $("#detail-body").replaceChildren(...body);
    $("#detail-cancel").hidden = ENDED.has(t.state);
    $("#detail-retry").hidden = !["failed", "canceled", "stopped"].includes(t.state);
    if (!dialog.open) dialog.showModal();
  }

  async act(action) {
    const id = this.detailId;
    try {
      await api(`/tasks/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    } catch (error) {
      $("#detail-body").prepend(el("p", { class: "error", text: `${action} refused: ${error.message}` }));
      return;
    }
    this.open(id);
    this.load();
  }
}
