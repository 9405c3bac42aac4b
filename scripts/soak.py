"""Soak: the synthetic universe for SOAK_SECONDS (default 600) at half the measured maximum
throughput, on real ``agent-worker`` processes and servers of its own (``make soak``).

Load: SOAK_SYMBOLS synthetic symbols in shards of 1000 (the benchmark's shape); every
SOAK_CYCLE_S seconds one ``backfill`` task per shard brings the next bars (60 s bars of
synthetic time), sized so the universe produces SOAK_RATE symbol-ticks per second. By default
that is 50% of the maximum sustained at the start on the same servers and SOAK_WORKERS (2)
workers, with the apps running (SOAK_CALIBRATION_S, default 90, of back-to-back rounds of 200
bars per symbol, the benchmark's job shape, as fast as they go), since this machine's load varies;
``pipeline.ticks_per_s.workers2`` of .bench/results.jsonl is printed beside it.

Checks, after a warm-up (the first 20% of the run, at least 30 s):
- memory of every long-lived process is flat: the median of the last quarter of samples is
  within 10% of the median of the first quarter (worker processes, their job processes at
  peak, the orchestrator, gateway and scheduler, the PostgreSQL server's own processes by
  private memory (RSS less shared pages: shared buffers are a fixed cache), Redis). The
  largest client backend is printed but not checked: each job opens its own connection
  (fork per job), so that figure is whichever job's backend is biggest at the sample, not
  one process that could grow. Redis is checked on what never expires: ``MEMORY USAGE`` of every
  key with no TTL, RQ's registries aside (their entries go with their jobs). What expires by
  itself (RQ's records of finished jobs, kept an hour for tasks, so growing through a ten-minute
  soak; caches) is bounded by its TTL, and Redis's used memory tracks it with its own overhead
  (dict tables, stream nodes) on top; that raw figure and the keyspace by key family, first and
  last, are in the report;
- queue depths are bounded (at most two cycles of jobs waiting) and do not grow;
- no job fails and every task finishes.

Prints the figures and writes them to .bench/soak.json; exits 1 when a check fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from redis import Redis

from agentsys import keys, symbols, tasks
from agentsys.keys import Keys
from agentsys.symbols import SymbolSpec
from bench import common

OUT = Path(".bench/soak.json")
SHARD = 1000
STEP_S = 60
START = datetime(2026, 1, 5, tzinfo=UTC)
FLAT = 0.10
QUEUES = keys.ALL_QUEUES


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def measured_rate() -> tuple[float, str]:
    found = common.last_recorded("pipeline.ticks_per_s.workers2")
    return (found, str(common.RESULTS)) if found else (80_000.0, "assumed")


def _rss(pid: int | None) -> int:
    try:
        return psutil.Process(pid).memory_info().rss if pid else 0
    except psutil.Error:
        return 0


APPS = {"orchestrator": ["agent-orchestrator", "--port", "{port}"], "gateway": ["agent-gateway", "--port", "{port}"],
        "scheduler": ["agent-scheduler", "--no-defaults"]}
"""The other long-running programs of a deployment, run beside the workers so their memory is watched too
(the scheduler without its default schedules: they would add load of their own)."""


@contextlib.contextmanager
def apps(env: dict[str, str], log_dir: Path) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], str | None]]]:
    """Start the orchestrator, gateway and scheduler; yields name -> (process, base URL or None)."""
    started: dict[str, tuple[subprocess.Popen[bytes], str | None]] = {}
    extra = {"API_TOKEN": secrets.token_hex(16)}
    try:
        for name, argv in APPS.items():
            port = _free_port() if "{port}" in argv else None
            args = [str(common.VENV_BIN / argv[0]), *(a.replace("{port}", str(port)) for a in argv[1:])]
            with open(log_dir / f"{name}.log", "ab") as out:
                proc = subprocess.Popen(args, env={**os.environ, **env, **extra}, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            if name == "orchestrator":
                extra["ORCHESTRATOR_URL"] = f"http://127.0.0.1:{port}"  # the gateway's /api proxy
            started[name] = (proc, f"http://127.0.0.1:{port}" if port else None)
        deadline = time.monotonic() + 30
        for name, (proc, url) in started.items():
            while url and time.monotonic() < deadline and not _answers(f"{url}/healthz"):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited at start (see {log_dir / (name + '.log')})")
                time.sleep(0.1)
        yield started
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in started.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


PG_LONG_LIVED = ("checkpointer", "background writer", "walwriter", "autovacuum launcher",
                 "logical replication launcher")
"""PostgreSQL's own processes (client backends come and go with each job's connection)."""


def _anon(proc: psutil.Process) -> int:
    """Private (anonymous) resident memory: RSS less shared and file-backed pages (shared buffers,
    code), i.e. what a leak would grow."""
    info = proc.memory_info()
    return int(info.rss - info.shared)


def _postgres(pid: int | None) -> tuple[int, int]:
    """Private memory of the postmaster and its long-lived processes; the largest client backend's."""
    if not pid:
        return 0, 0
    own = backend = 0
    try:
        root = psutil.Process(pid)
        own = _anon(root)
        for child in root.children():
            try:
                anon = _anon(child)
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if any(name in title for name in PG_LONG_LIVED):
                own += anon
            else:
                backend = max(backend, anon)
    except psutil.Error:
        pass
    return own, backend


REGISTRIES = ("rq:finished:", "rq:failed:", "rq:canceled:", "rq:deferred:", "rq:scheduled:")
"""RQ's per-queue registries: sorted sets of job ids, each entry dropped when its job's TTL runs out."""


def _family(key: str) -> str:
    """A key with its ids cut off: ``rq:job:<id>`` -> ``rq:job``; our keys keep the name after the prefix."""
    parts = key.split(":")
    return ":".join(parts[:2]) if parts[0] == "rq" else ":".join(parts[1:2]) or key


def keyspace(redis: Redis) -> dict[str, dict[str, int]]:
    """Per key family: keys, bytes (MEMORY USAGE) and the bytes that expire by themselves.

    Expiring means a key with a TTL (RQ's job records and results, our caches and pending keys)
    or an RQ registry, whose entries go with their jobs' TTL: memory bounded by a TTL, which in a
    ten-minute soak grows for the first hour (a task's record is kept an hour) without any leak.
    """
    out: dict[str, dict[str, int]] = {}
    batch: list[bytes] = []

    def flush() -> None:
        with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.memory_usage(key)
                pipe.pttl(key)
            got = pipe.execute()
        for key, size, ttl in zip(batch, got[::2], got[1::2], strict=True):
            name = key.decode(errors="replace")
            row = out.setdefault(_family(name), {"keys": 0, "bytes": 0, "expiring": 0})
            row["keys"] += 1
            row["bytes"] += size or 0
            if (ttl or -1) > 0 or name.startswith(REGISTRIES):
                row["expiring"] += size or 0
        batch.clear()

    for key in redis.scan_iter(count=1000):
        batch.append(key)
        if len(batch) == 500:
            flush()
    if batch:
        flush()
    return out


def sample(redis: Redis, conn: psycopg.Connection, group: common.Workers, s: common.Servers,
           ids: list[str]) -> dict[str, Any]:
    info = redis.info("memory")
    depths = {q: redis.llen(f"rq:queue:{q}") for q in QUEUES}
    failed = sum(redis.zcard(f"rq:failed:{q}") for q in QUEUES)
    states = dict(conn.execute("SELECT state, count(*) FROM task_runs WHERE id = ANY(%s) GROUP BY state",
                               (ids,)).fetchall())
    conn.rollback()
    row: dict[str, Any] = {
        "t": time.monotonic(), "depth": sum(depths.values()), "depths": depths, "failed_jobs": failed,
        "tasks": states, "redis_used": int(info["used_memory"]), "redis_rss": _rss(s.redis_pid),
    }
    space = keyspace(redis)
    row["redis_retained"] = sum(f["expiring"] for f in space.values())
    row["redis_keyspace"] = space
    row["postgres_anon"], row["postgres_backend_anon"] = _postgres(s.pg_pid)
    for i, p in enumerate(group.procs):
        row[f"worker{i}_rss"] = _rss(p.pid)
        row[f"worker{i}_peak"] = group.peak_rss.get(p.pid, 0)
    group.peak_rss.clear()  # peaks per sampling period from here on
    row["redis_own"] = sum(f["bytes"] - f["expiring"] for f in space.values())
    return row


def flatness(samples: list[dict[str, Any]], field: str) -> dict[str, Any]:
    values = [s[field] for s in samples if s.get(field)]
    if len(values) < 4:
        return {"growth": 0.0, "first": None, "last": None, "ok": True, "samples": len(values)}
    q = max(1, len(values) // 4)
    first, last = statistics.median(values[:q]), statistics.median(values[-q:])
    growth = (last - first) / first if first else 0.0
    return {"first_mb": round(first / 2**20, 1), "last_mb": round(last / 2**20, 1), "growth": round(growth, 3),
            "max_mb": round(max(values) / 2**20, 1), "ok": growth <= FLAT, "samples": len(values)}


CALIBRATION_BARS = 200
"""Bars per symbol of one calibration round (the benchmark's job shape)."""
CALIBRATION_S = 90.0
"""Seconds of back-to-back rounds the maximum is measured over (SOAK_CALIBRATION_S): long enough
that the tables grow and PostgreSQL checkpoints as in the soak itself. A burst of one round on
empty tables measured twice what ten minutes sustain, and half of it overloaded the soak."""
CALIBRATION_MAX_ROUNDS = 200
CALIBRATION_START = START - timedelta(seconds=CALIBRATION_MAX_ROUNDS * CALIBRATION_BARS * STEP_S)
"""Calibration rounds take consecutive bars from here on, all before the soak's first bar."""


def calibrate(redis: Redis, conn: psycopg.Connection, k: Keys, shards: list[list[str]], seconds: float) -> float:
    """Sustained symbol-ticks per second: rounds of one backfill per shard of CALIBRATION_BARS bars,
    each submitted once the one before it finished, for ``seconds``; measured from the first
    round's end (warm-up) to the last one's."""
    n_symbols = sum(len(m) for m in shards)
    began = time.monotonic()
    marks: list[datetime] = []
    for r in range(CALIBRATION_MAX_ROUNDS):
        first = CALIBRATION_START + timedelta(seconds=r * CALIBRATION_BARS * STEP_S)
        last = first + timedelta(seconds=(CALIBRATION_BARS - 1) * STEP_S)
        ids = [tasks.submit(redis, conn, k, type="backfill", params={
            "symbols": members, "start": first.isoformat(), "end": last.isoformat(), "interval_s": STEP_S}).id
            for members in shards]
        for task_id in ids:
            run = tasks.wait(conn, task_id, timeout=600)
            if run.state != "finished":
                raise SystemExit(f"soak: calibration task {task_id} {run.state}: {run.error}")
        ended = conn.execute("SELECT max(ended_at) FROM task_runs WHERE id = ANY(%s)", (ids,)).fetchone()[0]
        conn.rollback()
        marks.append(ended)
        if len(marks) >= 2:
            rate = (len(marks) - 1) * n_symbols * CALIBRATION_BARS / (marks[-1] - marks[0]).total_seconds()
            print(f"  calibration round {r + 1}: {rate:,.0f} symbol-ticks/s sustained", flush=True)
            if time.monotonic() - began >= seconds:
                return rate
    raise SystemExit(f"soak: calibration did not end within {CALIBRATION_MAX_ROUNDS} rounds")


def main() -> int:
    seconds = _env_float("SOAK_SECONDS", 600)
    n_symbols = int(_env_float("SOAK_SYMBOLS", 10_000))
    cycle = _env_float("SOAK_CYCLE_S", 20)
    n_workers = int(_env_float("SOAK_WORKERS", 2))
    interval = _env_float("SOAK_SAMPLE_S", 5)
    bench_rate, bench_source = measured_rate()
    warmup = max(30.0, 0.2 * seconds)
    with common.servers() as s:
        name = f"soak_{uuid.uuid4().hex[:8]}"
        redis = Redis.from_url(s.redis_url)
        redis.flushdb()
        with common.fresh_database(s, name) as url:
            names = [f"SK{i:05d}" for i in range(n_symbols)]
            with psycopg.connect(url) as conn:
                symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in names], shard_size=SHARD)
            shards = [names[i:i + SHARD] for i in range(0, n_symbols, SHARD)]
            env = {"REDIS_URL": s.redis_url, "DATABASE_URL": url, "KEY_PREFIX": name, "LOG_LEVEL": "WARNING",
                   "LOG_FORMAT": "json", "PYTHONPATH": str(Path.cwd())}
            ids: list[str] = []
            samples: list[dict[str, Any]] = []
            log_dir = Path(".bench/logs") / name
            with common.workers(n_workers, env, log_dir) as group, apps(env, log_dir) as programs, \
                    psycopg.connect(url) as conn:
                # the maximum, measured here and now: rounds of CALIBRATION_BARS as fast as the workers go
                max_rate = calibrate(redis, conn, Keys(name), shards, _env_float("SOAK_CALIBRATION_S", CALIBRATION_S))
                source = f"calibrated here ({bench_source}: {bench_rate:,.0f})"
                if os.environ.get("SOAK_RATE"):
                    rate, source = float(os.environ["SOAK_RATE"]), "SOAK_RATE"
                else:
                    rate = 0.5 * max_rate
                bars = max(1, round(rate * cycle / n_symbols))
                print(f"soak: {seconds:.0f}s, {n_symbols:,} symbols, {rate:,.0f} symbol-ticks/s (max {max_rate:,.0f},"
                      f" {source}): one backfill per shard every {cycle:g}s of {bars} bars; {n_workers} workers",
                      flush=True)
                began = time.monotonic()
                k = 0
                next_sample = began
                while True:
                    now = time.monotonic()
                    if now - began >= seconds:
                        break
                    if now >= began + k * cycle:  # the next cycle is due: submit it
                        first = START + timedelta(seconds=k * bars * STEP_S)
                        last = first + timedelta(seconds=(bars - 1) * STEP_S)
                        for members in shards:
                            ids.append(tasks.submit(redis, conn, Keys(name), type="backfill", params={
                                "symbols": members, "start": first.isoformat(), "end": last.isoformat(),
                                "interval_s": STEP_S}).id)
                        k += 1
                    if now >= next_sample:
                        row = sample(redis, conn, group, s, ids)
                        for app, (proc, base) in programs.items():  # their memory, while they serve
                            if base:
                                _answers(f"{base}/metrics" if app == "orchestrator" else f"{base}/healthz")
                            row[f"{app}_rss"] = _rss(proc.pid)
                        row["elapsed"] = round(now - began, 1)
                        samples.append(row)
                        print(f"  {row['elapsed']:>6.0f}s depth {row['depth']:>3} tasks {row['tasks']} "
                              f"redis {row['redis_used'] / 2**20:.1f}MB (own {row['redis_own'] / 2**20:.1f}) "
                              f"pg {row['postgres_anon'] / 2**20:.0f}MB workers "
                              + " ".join(f"{row[f'worker{i}_rss'] / 2**20:.0f}" for i in range(n_workers))
                              + " " + " ".join(f"{app} {row[f'{app}_rss'] / 2**20:.0f}" for app in APPS),
                              flush=True)
                        next_sample += interval
                    time.sleep(min(0.05, max(0.0, min(began + k * cycle, next_sample) - time.monotonic())))
                drained_at = time.monotonic()
                deadline = drained_at + max(120.0, 3 * cycle)
                done = 0
                while time.monotonic() < deadline:
                    done = conn.execute("SELECT count(*) FROM task_runs WHERE id = ANY(%s) AND state IN"
                                        " ('finished', 'failed', 'canceled', 'stopped')", (ids,)).fetchone()[0]
                    conn.rollback()
                    if done == len(ids):
                        break
                    time.sleep(0.2)
                drain_s = time.monotonic() - drained_at
                final = sample(redis, conn, group, s, ids)
                ticks = conn.execute("SELECT count(*) FROM prices WHERE ts >= %s", (START,)).fetchone()[0]
                bangs = conn.execute("SELECT count(*) FROM bang_events").fetchone()[0]
                conn.rollback()
        redis.close()
    steady = [r for r in samples if r["elapsed"] >= warmup]
    jobs_per_cycle = len(shards) * 3
    third = max(1, len(steady) // 3)
    depth_first = statistics.mean(r["depth"] for r in steady[:third]) if steady else 0
    depth_last = statistics.mean(r["depth"] for r in steady[-third:]) if steady else 0
    memory = {f: flatness(steady, f) for f in
              [*(f"worker{i}_rss" for i in range(n_workers)), *(f"worker{i}_peak" for i in range(n_workers)),
               "postgres_anon", "redis_own", *(f"{app}_rss" for app in APPS)]}
    raw_redis = {f: flatness(steady, f) for f in ("redis_used", "redis_rss", "redis_retained")}
    short_lived = {"postgres_backend_anon": flatness(steady, "postgres_backend_anon")}
    checks = {
        "memory_flat": all(m["ok"] for m in memory.values()),
        "queue_bounded": max((r["depth"] for r in samples), default=0) <= 2 * jobs_per_cycle,
        "queue_not_growing": depth_last <= depth_first + jobs_per_cycle,
        "no_failed_jobs": final["failed_jobs"] == 0,
        "all_tasks_finished": final["tasks"] == {"finished": len(ids)},
    }
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": seconds, "warmup_s": warmup,
        "symbols": n_symbols, "workers": n_workers, "target_ticks_per_s": round(rate),
        "max_ticks_per_s": round(max_rate), "max_source": source, "bench_ticks_per_s": bench_rate, "cycle_s": cycle, "bars_per_cycle": bars, "tasks": len(ids),
        "ticks_stored": ticks, "achieved_ticks_per_s": round(ticks / (drained_at - began + drain_s)),
        "bangs": bangs, "drain_s": round(drain_s, 1),
        "queue_depth": {"max": max((r["depth"] for r in samples), default=0), "bound": 2 * jobs_per_cycle,
                        "mean_first_third": round(depth_first, 1), "mean_last_third": round(depth_last, 1)},
        "memory": memory, "redis_raw": raw_redis, "short_lived": short_lived, "failed_jobs": final["failed_jobs"], "task_states": final["tasks"],
        "checks": checks, "ok": all(checks.values()),
        "redis_keyspace": {"first": steady[0]["redis_keyspace"] if steady else {}, "last": final["redis_keyspace"]},
        "samples": [{k: v for k, v in r.items() if k not in ("t", "depths", "redis_keyspace")} for r in samples],
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1, default=str))
    print(f"soak: {'ok' if report['ok'] else 'FAILED'} ({', '.join(k for k, v in checks.items() if not v) or 'all checks'}"
          f"); figures in {OUT}", flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
