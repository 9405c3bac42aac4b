"""Live capacity: the largest universe that ticks every second on two cores, and what it costs.

Shaped like a deployment, one fresh database (and Redis database) per universe size: the
bench starts its own Redis (append-only) and PostgreSQL (with ``pg_stat_statements``), two
``agent-worker`` processes with the default queues, the real ``agent-scheduler`` with
``PRICE_INTERVAL_S=1`` (its ``universe-tick`` submits a ``run_agent`` price task every second,
and its poll counts against the lag), one ``agent-orchestrator`` and one ``agent-gateway``
with 100 WebSocket clients (bench.gateway's client process). Symbols are synthetic, added
through ``POST /symbols`` (so they shard as a user's do); the price agent's first run fetches
MAX_CATCHUP_BARS of history, and the size's warm-up lasts until every symbol's bang progress
is within WARM_LAG_S of the clock. Then, over LIVE_WINDOW_S seconds, a ``note`` goes through
``POST /tasks`` every second, and a size *sustains* when all of these hold:

- **lag**: the lag of a symbol at bar T is the wall time of the COMMIT that covers T for the
  bang agent (a bang job's, or a fused live tick's in the price job), minus T's end. The
  synthetic source gives bar T at wall time T (``price.latest_bar``), so T's end is T. Each such
  job logs ``committed_at`` (taken right after COMMIT returned) and ``covered_us``, its shard's
  minimum bang progress; a shard covers T at its first commit
  with ``covered_us >= T`` (every symbol of the shard counts with that commit: conservative).
  p99 over (symbol, bar) is at most 2 s; the p99 per bar rises by at most 10 ms per second
  (least-squares slope over the window's bars); the agent queues end no deeper than they
  began (the mean of the last 10 one-second samples at most the first 10's mean plus one job);
- **tick tasks**: each ``universe-tick`` task ends within 2 s of its tick (p99; the scheduler's
  ``schedule fired`` log line gives each task's tick);
- **notes**: a note's ``started_at`` is within 1 s of its POST (p99);
- **bangs**: bang to client p99 at most 50 ms (bench.gateway's clock).

Sizes: 10k, 20k, 40k, ... (doubling up to LIVE_MAX_SYMBOLS), then bisection between the last
size that passed and the first that failed, to LIVE_RESOLUTION symbols; the largest passing
size then runs again for LIVE_HOLD_S (600) seconds and must hold there too (if not, the next
size down is held). CPU per committed live symbol-tick (the ``ticks`` of the bang commits and
the ``fused_ticks`` of the fused price commits in the window) is read from /proc for the processes the bench started.

``LIVE_PROFILE=1`` profiles instead of searching: at LIVE_PROFILE_SIZES (10k, 30k) it runs one
window with ``pg_stat_statements`` reset at its start and py-spy sampling both workers and
their job processes, and writes ``.bench/profile/live-N/`` (statements, collapsed stacks, a
summary).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from redis import Redis

from agentsys import keys as keyspace
from agentsys.keys import Keys
from bench import common
from bench.api import orchestrator
from bench.gateway import CLIENT_SYMBOLS, CLIENTS, Commits, _latencies, _stop, clients, gateway

SIZES = [int(x) for x in os.environ.get("LIVE_SIZES", "10000,20000,40000").split(",") if x]
"""The first sizes tried, in order; then doubling up to LIVE_MAX_SYMBOLS while they pass."""
MAX_SYMBOLS = int(os.environ.get("LIVE_MAX_SYMBOLS", 160_000))
RESOLUTION = int(os.environ.get("LIVE_RESOLUTION", 10_000))
"""Bisection stops when the passing and failing sizes are this close."""
WINDOW_S = float(os.environ.get("LIVE_WINDOW_S", 60))
"""Seconds measured per size, after warm-up."""
HOLD_S = float(os.environ.get("LIVE_HOLD_S", 600))
"""Seconds the largest passing size runs again, and must hold."""
WARM_LAG_S = 3.0
"""Warm-up ends once every symbol's bang progress is this close to the clock."""
SETTLE_S = 5.0
"""Seconds after warm-up (and after the clients connect) before the window opens."""
TAIL_S = 5.0
"""Bars (and ticks, notes) of the window's last seconds are not judged: their commits may come after it."""
PROFILE = os.environ.get("LIVE_PROFILE", "") not in ("", "0", "false")
PROFILE_SIZES = [int(x) for x in os.environ.get("LIVE_PROFILE_SIZES", "10000,30000").split(",") if x]
PROFILE_RATE = 50
"""py-spy samples per second per process."""
WORKERS = 2
TOKEN = secrets.token_urlsafe(24)
LAG_P99_S, LAG_SLOPE, TASK_P99_S, NOTE_P99_S, BANG_P99_MS = 2.0, 0.010, 2.0, 1.0, 50.0
"""The four targets: seconds, seconds per second, seconds, seconds, milliseconds."""
AGENT_QUEUES = keyspace.worker_queue_order(list(keyspace.AGENTS))
LOGS = Path(".bench/logs")
PROFILES = Path(".bench/profile")


def _env(s: common.Servers, db_url: str, prefix: str) -> dict[str, str]:
    """Production defaults, but for the one-second bars and INFO logs (the bench reads them)."""
    return {"REDIS_URL": s.redis_url, "DATABASE_URL": db_url, "KEY_PREFIX": prefix, "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json", "PRICE_INTERVAL_S": "1", "PYTHONPATH": str(Path.cwd()), "API_TOKEN": TOKEN}


def _timeout_warm(n: int) -> float:
    """Warm-up bound: a minute plus MAX_CATCHUP_BARS per symbol at 20,000 symbol-ticks/s."""
    return 60 + n * 720 / 20_000


WARM_STALL_S = 60.0
"""Warm-up gives up early when the oldest symbol's lag has not shrunk by a second in this long."""


# ---- processes ------------------------------------------------------------------------

@contextlib.contextmanager
def scheduler(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen([str(common.VENV_BIN / "agent-scheduler"), "--name", "live-bench"],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc)


def add_symbols(api: str, n: int) -> list[str]:
    """N synthetic symbols through ``POST /symbols``, 10,000 a request (the route's limit)."""
    names = [f"L{i:06d}" for i in range(n)]
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http:
        for i in range(0, n, 10_000):
            reply = http.post("/symbols", json={"symbols": [{"symbol": s} for s in names[i:i + 10_000]]})
            if reply.status_code >= 300:
                raise RuntimeError(f"POST /symbols: {reply.status_code} {reply.text[:200]}")
    return names


def warm_up(url: str, n: int) -> tuple[bool, float]:
    """Wait until every symbol's bang progress is within WARM_LAG_S of now; (caught up, seconds).

    Gives up at ``_timeout_warm(n)``, or sooner once the oldest symbol's lag stops shrinking
    (WARM_STALL_S): a universe that does not catch up will not within the bound either.
    """
    began = time.monotonic()
    deadline = began + _timeout_warm(n)
    seen: list[tuple[float, float]] = []  # (monotonic, lag of the oldest symbol)
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*), extract(epoch FROM min(last_ts)) FROM progress"
                               " WHERE agent = 'bang'").fetchone()
            done, oldest = (int(row[0]), float(row[1] or 0)) if row else (0, 0.0)
            now = time.monotonic()
            if done >= n:
                lag = time.time() - oldest
                if lag <= WARM_LAG_S:
                    return True, now - began
                seen.append((now, lag))
                before = [v for t, v in seen if t <= now - WARM_STALL_S]
                if before and lag > before[-1] - 1.0:
                    return False, now - began
            if now > deadline:
                return False, now - began
            time.sleep(1.0)


@contextlib.contextmanager
def _background(run: Callable[[], None], stop: threading.Event, join_s: float) -> Iterator[None]:
    """``run`` in a daemon thread for the block; then ``stop`` is set and the thread joined."""
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(join_s)


@dataclass
class Notes:
    """A ``note`` through ``POST /tasks`` every second: (task id, wall time of the POST)."""

    api: str
    posted: list[tuple[str, float]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
            while not self._stop.is_set():
                at = time.time()
                try:
                    reply = http.post("/tasks", json={"description": "live bench note", "priority": 1})
                    reply.raise_for_status()
                    self.posted.append((reply.json()["id"], at))
                except httpx.HTTPError:
                    self.errors += 1
                self._stop.wait(max(0.0, 1.0 - (time.time() - at)))

    @contextlib.contextmanager
    def running(self) -> Iterator[Notes]:
        with _background(self.run, self._stop, 15):
            yield self


@dataclass
class Depths:
    """Depth of the agent queues (and their low twins), once a second: (wall time, jobs)."""

    redis_url: str
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        redis = Redis.from_url(self.redis_url)
        while not self._stop.wait(1.0):
            with redis.pipeline(transaction=False) as pipe:
                for q in AGENT_QUEUES:
                    pipe.llen(f"rq:queue:{q}")
                self.samples.append((time.time(), sum(pipe.execute())))
        redis.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Depths]:
        with _background(self.run, self._stop, 5):
            yield self


@contextlib.contextmanager
def profiling(url: str, pids: list[int], out: Path, seconds: float) -> Iterator[None]:
    """pg_stat_statements from zero and py-spy on each worker (and its job processes) for the window."""
    out.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    spies = [subprocess.Popen([str(common.VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses",
                               "--nonblocking", "--rate", str(PROFILE_RATE), "--format", "raw",
                               "--duration", str(int(seconds)), "-o", str(out / f"worker-{i}.collapsed")],
                              stdout=subprocess.DEVNULL, stderr=(out / f"py-spy-{i}.log").open("ab"))
             for i, pid in enumerate(pids)]
    try:
        yield
    finally:
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.send_signal(signal.SIGINT)
                spy.wait(10)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT calls, total_exec_time, rows, shared_blks_hit + shared_blks_read, query FROM pg_stat_statements"
                " WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " ORDER BY total_exec_time DESC LIMIT 200").fetchall()
        (out / "pg_statements.json").write_text(json.dumps(
            [{"calls": c, "total_ms": t, "rows": r, "blocks": b, "query": " ".join(q.split())}
             for c, t, r, b, q in rows], indent=1))


# ---- what the logs say ----------------------------------------------------------------

def _log_lines(paths: list[Path], message: str) -> Iterator[dict[str, Any]]:
    needle = f'"{message}"'
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if needle in line:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


def _weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    if not len(values):
        return math.nan
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q / 100 * cum[-1])])


def lags(commits: list[dict[str, Any]], sizes: dict[int, int], first: int, last: int, now: float
         ) -> tuple[float, float, list[float]]:
    """Per bar T in [first, last]: each shard's lag (first commit covering T, minus T), weighted by
    its symbols. Returns (p99 over (symbol, bar), slope of the per-bar p99 in s/s, per-bar p99s).
    A bar a shard has not covered by ``now`` counts with ``now - T`` (at least TAIL_S)."""
    by_shard: dict[int, list[tuple[float, int]]] = {s: [] for s in sizes}
    for c in commits:
        if c.get("covered_us") is not None and c.get("shard") in by_shard:
            by_shard[c["shard"]].append((float(c["committed_at"]), int(c["covered_us"])))
    bars = np.arange(first, last + 1, dtype=np.float64)
    per_bar: list[float] = []
    all_v, all_w = [], []
    table = []
    for seq in by_shard.values():
        seq.sort()
        if seq:
            at = np.array([a for a, _ in seq], dtype=np.float64)
            mark = np.maximum.accumulate(np.array([c for _, c in seq], dtype=np.float64) / 1e6)
            idx = np.searchsorted(mark, bars, side="left")  # the first commit whose watermark reaches T
            covered = np.where(idx < len(at), at[np.minimum(idx, len(at) - 1)], now)
        else:
            covered = np.full(len(bars), now)
        table.append(covered - bars)
    matrix = np.array(table)  # (shards, bars)
    weights = np.array([sizes[s] for s in by_shard], dtype=np.float64)
    for k in range(len(bars)):
        per_bar.append(_weighted_percentile(matrix[:, k], weights, 99))
        all_v.append(matrix[:, k])
        all_w.append(weights)
    p99 = _weighted_percentile(np.concatenate(all_v), np.concatenate(all_w), 99) if all_v else math.nan
    slope = float(np.polyfit(bars - bars[0], np.array(per_bar), 1)[0]) if len(bars) > 2 else math.nan
    return p99, slope, per_bar


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else math.nan


def job_costs(commits: list[dict[str, Any]], w0: float, w1: float) -> dict[str, Any]:
    """Jobs per agent in the window, their median body time, and the bang commits' symbol-ticks."""
    jobs: Counter[str] = Counter()
    body_ms: dict[str, list[float]] = {}
    for c in commits:
        stamp = datetime.fromisoformat(c["timestamp"]).timestamp()
        if w0 <= stamp <= w1:
            agent = str(c.get("agent") or c.get("logger"))
            jobs[agent] += 1
            body_ms.setdefault(agent, []).append(float(c.get("duration_ms") or 0))
    return {"jobs": dict(jobs), "body_ms_p50": {a: round(_pct(v, 50), 1) for a, v in body_ms.items()},
            "body_s_total": {a: round(sum(v) / 1000, 2) for a, v in body_ms.items()}}


# ---- one size -------------------------------------------------------------------------

def run_size(s: common.Servers, n: int, window_s: float, *, profile: Path | None = None) -> dict[str, Any]:
    name = f"live_{n}_{uuid.uuid4().hex[:6]}"
    work = LOGS / name
    work.mkdir(parents=True, exist_ok=True)
    redis = Redis.from_url(s.redis_url)
    redis.flushdb()
    with common.fresh_database(s, name) as url:
        env = _env(s, url, name)
        with common.workers(WORKERS, env, work) as group, \
                orchestrator(env, TOKEN, work / "orchestrator.log") as (api, api_pid), \
                gateway(env, work) as (gw_url, gw), scheduler(env, work / "scheduler.log") as sched:
            t = time.monotonic()
            names = add_symbols(api, n)
            added_s = time.monotonic() - t
            caught_up, warm_s = warm_up(url, n)
            print(f"    {n:,} symbols: added in {added_s:.1f}s; warm-up {'caught up' if caught_up else 'timed out'}"
                  f" in {warm_s:.0f}s", flush=True)
            rng = random.Random(7)
            filters = [rng.sample(names, CLIENT_SYMBOLS) for _ in range(CLIENTS)]
            with clients(gw_url, filters, work) as (received_path, cl), \
                    Commits(s.redis_url, Keys(name).channel_bangs).running() as bang_commits, \
                    Depths(s.redis_url).running() as depths, Notes(api).running() as notes:
                time.sleep(SETTLE_S)
                pids = {"pg": s.pg_pid, "redis": s.redis_pid, "gateway": gw.pid, "orchestrator": api_pid,
                        "scheduler": sched.pid, "clients": cl.pid}
                w0 = time.time()
                cpu0 = {"workers": group.cpu(), **{k: common.cpu_seconds(p) for k, p in pids.items()}}
                with profiling(url, [p.pid for p in group.procs], profile, window_s) if profile \
                        else contextlib.nullcontext():
                    time.sleep(window_s)
                    w1 = time.time()
                    cpu1 = {"workers": group.cpu(), **{k: common.cpu_seconds(p) for k, p in pids.items()}}
                time.sleep(2.0)  # the last messages reach the clients
                judged = w1 - TAIL_S
            now = time.time()
            with psycopg.connect(url, autocommit=True) as conn:
                sizes = dict(conn.execute("SELECT shard, count(*) FROM symbols GROUP BY shard").fetchall())
                fired = [line for line in _log_lines([work / "scheduler.log"], "schedule fired")
                         if line.get("schedule") == "universe-tick"]
                ticks = {line["task_id"]: datetime.fromisoformat(line["tick"]).timestamp() for line in fired}
                ticks = {k: v for k, v in ticks.items() if w0 <= v <= judged}
                rows = conn.execute("SELECT id, extract(epoch FROM ended_at)::float8, state FROM task_runs"
                                    " WHERE id = ANY(%s)", (list(ticks),)).fetchall()
                ended = {i: e for i, e, _ in rows}
                task_s = [(ended.get(i) or now) - tick for i, tick in ticks.items()]
                note_ids = [(i, at) for i, at in notes.posted if w0 <= at <= judged]
                started = dict(conn.execute("SELECT id, extract(epoch FROM started_at)::float8 FROM task_runs"
                                            " WHERE id = ANY(%s)", ([i for i, _ in note_ids],)).fetchall())
                note_s = [(started.get(i) or now) - at for i, at in note_ids]
                queued_tasks = int(conn.execute("SELECT count(*) FROM task_runs WHERE state = 'queued'").fetchone()[0])
            received = json.loads(received_path.read_text())
        pss_mb = max(group.peak_pss.values()) / 2**20
        rss_mb = max(group.peak_rss.values()) / 2**20
    worker_logs = sorted(work.glob("worker-*.log"))
    finished = list(_log_lines(worker_logs, "job finished"))
    bangs = [c for c in finished if c.get("covered_us", False) is not False and c.get("committed_at") is not None]
    lag_p99, slope, per_bar = lags(bangs, sizes, math.ceil(w0), math.floor(judged), now)
    window_bangs = [c for c in bangs if w0 <= float(c["committed_at"]) <= w1]
    symbol_ticks = sum(int((c.get("ticks") if c.get("agent") == "bang" else c.get("fused_ticks")) or 0)
                       for c in window_bangs)
    live_ids = {i for i, at in bang_commits.at.items() if w0 <= at <= w1}
    found = _latencies(received, live_ids, bang_commits.at)
    in_window = [d for at, d in depths.samples if w0 <= at <= w1]
    depth_start = float(np.mean(in_window[:10])) if in_window else math.nan
    depth_end = float(np.mean(in_window[-10:])) if in_window else math.nan
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    per_tick = {k: (v * 1e6 / symbol_ticks if symbol_ticks else math.nan) for k, v in cpu.items()}
    result = {
        "symbols": n, "shards": len(sizes), "window_s": round(w1 - w0, 1), "caught_up": caught_up,
        "warm_s": round(warm_s, 1), "lag_p99_s": lag_p99, "lag_slope_s_per_s": slope,
        "lag_per_bar_p99_first_last": [round(per_bar[0], 3), round(per_bar[-1], 3)] if per_bar else [],
        "depth_start": depth_start, "depth_end": depth_end, "task_finish_p99_s": _pct(task_s, 99),
        "tick_tasks": len(task_s), "note_start_p99_s": _pct(note_s, 99), "notes": len(note_s),
        "note_errors": notes.errors, "bang_to_client_p99_ms": _pct(found["samples"], 99),
        "bang_samples": len(found["samples"]), "bangs_missing": found["missing"],
        "committed_symbol_ticks": symbol_ticks, "symbol_ticks_per_s": symbol_ticks / (w1 - w0),
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()}, "us_per_symbol_tick": per_tick,
        "worker_pss_mb": pss_mb, "worker_rss_mb": rss_mb, "tasks_queued_at_end": queued_tasks,
        **job_costs(finished, w0, w1),
    }
    result["failures"] = judge(result)
    result["sustained"] = not result["failures"]
    return result


def judge(r: dict[str, Any]) -> list[str]:
    """The reasons a size does not sustain (empty: it does)."""
    failures = []
    checks = [
        (r["caught_up"], "warm-up never caught up"),
        (r["lag_p99_s"] <= LAG_P99_S, f"lag p99 {r['lag_p99_s']:.2f}s > {LAG_P99_S}s"),
        (r["lag_slope_s_per_s"] <= LAG_SLOPE, f"lag grows {1000 * r['lag_slope_s_per_s']:.1f} ms/s"),
        (r["depth_end"] <= r["depth_start"] + 1, f"queues grew {r['depth_start']:.1f} -> {r['depth_end']:.1f} jobs"),
        (r["task_finish_p99_s"] <= TASK_P99_S, f"tick task finish p99 {r['task_finish_p99_s']:.2f}s > {TASK_P99_S}s"),
        (r["note_start_p99_s"] <= NOTE_P99_S, f"note start p99 {r['note_start_p99_s']:.2f}s > {NOTE_P99_S}s"),
        (r["bang_to_client_p99_ms"] <= BANG_P99_MS,
         f"bang to client p99 {r['bang_to_client_p99_ms']:.1f}ms > {BANG_P99_MS}ms"),
    ]
    for ok, why in checks:
        if not ok:  # NaN compares False: no sample is a failure too
            failures.append(why)
    return failures


def _report(r: dict[str, Any], label: str) -> None:
    us = r["us_per_symbol_tick"]
    print(f"    {label}: {'SUSTAINED' if r['sustained'] else 'failed: ' + '; '.join(r['failures'])}", flush=True)
    print(f"      lag p99 {r['lag_p99_s']:.2f}s (slope {1000 * r['lag_slope_s_per_s']:.1f} ms/s), tick tasks p99"
          f" {r['task_finish_p99_s']:.2f}s ({r['tick_tasks']}), notes p99 {r['note_start_p99_s']:.2f}s"
          f" ({r['notes']}), bang->client p99 {r['bang_to_client_p99_ms']:.1f}ms ({r['bang_samples']} samples);"
          f" queues {r['depth_start']:.1f} -> {r['depth_end']:.1f}", flush=True)
    print(f"      {r['committed_symbol_ticks']:,} symbol-ticks committed ({r['symbol_ticks_per_s']:,.0f}/s); us per"
          f" symbol-tick: " + ", ".join(f"{k} {v:.1f}" for k, v in us.items()) + f"; jobs {r['jobs']}"
          f" body ms p50 {r['body_ms_p50']}; worker PSS {r['worker_pss_mb']:.0f} MB", flush=True)


def _record_size(r: dict[str, Any]) -> None:
    n = r["symbols"]
    extra = {k: v for k, v in r.items() if k not in ("us_per_symbol_tick",)}
    common.record(f"live.{n}.lag_p99_s", r["lag_p99_s"], "s", sustained=r["sustained"], failures=r["failures"],
                  slope_s_per_s=r["lag_slope_s_per_s"], depth=[r["depth_start"], r["depth_end"]])
    common.record(f"live.{n}.task_finish_p99_s", r["task_finish_p99_s"], "s", tasks=r["tick_tasks"])
    common.record(f"live.{n}.note_start_p99_s", r["note_start_p99_s"], "s", notes=r["notes"])
    common.record(f"live.{n}.bang_to_client_p99_ms", r["bang_to_client_p99_ms"], "ms", samples=r["bang_samples"])
    us = r["us_per_symbol_tick"]
    for key, figure in (("pg", "pg"), ("workers", "worker"), ("redis", "redis"), ("gateway", "gateway")):
        common.record(f"live.{n}.{figure}_us_per_symbol_tick", us[key], "us", **({"run": extra} if key == "pg" else {}))


def _cost(us: dict[str, float]) -> float:
    return us["pg"] + us["workers"] + us["redis"]


def batch_cost() -> float | None:
    """(PostgreSQL + worker + Redis) us per symbol-tick of the batch bench (this run's, else the last recorded)."""
    parts = [common.last_recorded(f"pipeline.{k}_us_per_symbol_tick") for k in ("pg", "worker", "redis")]
    return None if any(p is None for p in parts) else float(sum(parts))  # type: ignore[arg-type]


# ---- the search -----------------------------------------------------------------------

def search(s: common.Servers) -> None:
    results: dict[int, dict[str, Any]] = {}

    def attempt(n: int) -> bool:
        r = results[n] = run_size(s, n, WINDOW_S)
        _report(r, f"{n:,} symbols, {WINDOW_S:.0f}s window")
        _record_size(r)
        return bool(r["sustained"])

    passed, failed = 0, None
    sizes = list(SIZES)
    while sizes:
        n = sizes.pop(0)
        if attempt(n):
            passed = n
            if not sizes and n * 2 <= MAX_SYMBOLS:
                sizes.append(n * 2)
        else:
            failed = n
            break
    while failed is not None and failed - passed > RESOLUTION:
        mid = (passed + failed) // 2 // RESOLUTION * RESOLUTION
        if mid <= passed:
            break
        if attempt(mid):
            passed = mid
        else:
            failed = mid
    held, held_run = 0, None
    while passed > 0:
        r = run_size(s, passed, HOLD_S)
        _report(r, f"{passed:,} symbols held for {HOLD_S:.0f}s")
        if r["sustained"]:
            held, held_run = passed, r
            break
        passed -= RESOLUTION
    common.record("live.max_symbols_1hz", held, "symbols", hold_s=HOLD_S, resolution=RESOLUTION,
                  sizes_tried={n: r["sustained"] for n, r in results.items()},
                  hold=({k: v for k, v in held_run.items() if k != "us_per_symbol_tick"} if held_run else None))
    basis = held_run or results[min(results)]
    batch = batch_cost()
    if batch:
        common.record("live.cost_ratio_vs_batch", _cost(basis["us_per_symbol_tick"]) / batch, "x",
                      at_symbols=basis["symbols"], live_us=_cost(basis["us_per_symbol_tick"]), batch_us=batch,
                      note=None if held_run else "no size sustained: the smallest size tried")
    else:
        print("    no batch figures recorded: run BENCH=pipeline,live for live.cost_ratio_vs_batch", flush=True)
    common.record("live.worker_pss_mb", max(r["worker_pss_mb"] for r in [*results.values(), *([held_run] if held_run
                                                                                               else [])]), "MB",
                  note="largest PSS of a worker plus its job process, warm-up (history catch-up) included")


# ---- the profile ----------------------------------------------------------------------

def summarise_stacks(paths: list[Path], top: int = 30) -> list[str]:
    """py-spy's collapsed stacks as text: RQ's share outside the job, our functions (inclusive),
    and the libraries the samples end in (self)."""
    total = in_job = 0
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            k = int(count)
            total += k
            frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
            in_job += k if any(label.endswith("Job.perform") for label, _ in frames) else 0
            for label in {label for label, package in frames if package in ("worker", "agentsys")}:
                inclusive[label] += k
            if frames:
                leaf[frames[-1][1]] += k
    if not total:
        return ["no samples"]
    lines = [f"{total} samples; in the job function {100 * in_job / total:.1f}%, RQ around it (fork, dequeue,"
             f" registries, heartbeats) {100 * (total - in_job) / total:.1f}%", "", "our functions, inclusive:"]
    lines += [f"{100 * k / total:6.1f}%  {name}" for name, k in inclusive.most_common(top)]
    lines += ["", "where the samples end (self), by package:"]
    lines += [f"{100 * k / total:6.1f}%  {name}" for name, k in leaf.most_common(12)]
    return lines


def summarise_statements(statements: list[dict[str, Any]], ticks: int, top: int = 15) -> list[str]:
    """Top-level statements grouped by shape: COPY is a utility statement, recorded with its
    parameters inline (psycopg binds them on the client), so each shard's array is its own entry."""
    shapes: dict[str, list[float]] = {}
    for st in statements:
        shape = re.sub(r"'[^']*'|\$\d+|\b\d+\b", "?", st["query"])
        calls_ms = shapes.setdefault(shape, [0, 0.0])
        calls_ms[0] += st["calls"]
        calls_ms[1] += st["total_ms"]
    ranked = sorted(shapes.items(), key=lambda kv: -kv[1][1])[:top]
    return [f"{1000 * ms / ticks:8.2f} us {ms / calls:8.1f} ms/call {int(calls):6d} calls  {shape[:140]}"
            for shape, (calls, ms) in ranked]


def _frame(frame: str) -> tuple[str, str]:
    """``fn (pkg/mod.py:12)`` -> (``pkg.mod.fn``, ``pkg``)."""
    fn, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].removesuffix(".py")
    module = path.replace("/", ".")
    return f"{module}.{fn.strip()}", path.split("/", 1)[0]


def profile(s: common.Servers) -> None:
    for n in PROFILE_SIZES:
        out = PROFILES / f"live-{n}"
        shutil.rmtree(out, ignore_errors=True)
        r = run_size(s, n, WINDOW_S, profile=out)
        _report(r, f"profile, {n:,} symbols")
        (out / "run.json").write_text(json.dumps(r, indent=1, default=str))
        ticks = r["committed_symbol_ticks"] or 1
        statements = json.loads((out / "pg_statements.json").read_text())
        lines = [f"# live profile, {n} symbols, {r['window_s']} s window, {ticks} committed symbol-ticks",
                 "", "## PostgreSQL (pg_stat_statements): exec us per committed symbol-tick", ""]
        lines += summarise_statements(statements, ticks)
        lines += ["", "## workers (py-spy, on-CPU samples, inclusive %)", ""]
        lines += summarise_stacks(sorted(out.glob("worker-*.collapsed")))
        (out / "summary.txt").write_text("\n".join(lines) + "\n")
        print("\n".join("      " + line for line in lines), flush=True)


def main() -> None:
    mode = "profile at " + ",".join(map(str, PROFILE_SIZES)) if PROFILE else (
        f"sizes {','.join(map(str, SIZES))}.. up to {MAX_SYMBOLS:,}, window {WINDOW_S:.0f}s, hold {HOLD_S:.0f}s")
    print(f"live: {WORKERS} workers, agent-scheduler at 1 s, orchestrator, gateway + {CLIENTS} clients; {mode}",
          flush=True)
    with common.servers(own=True, pg_options=("-c", "shared_preload_libraries=pg_stat_statements")) as s:
        profile(s) if PROFILE else search(s)


if __name__ == "__main__":
    main()
