"""Pipeline throughput: the batched shard design against the seeds' one-job-per-tick design.

Clock: from the first enqueue to the last commit (the ``ended_at`` the last bang job
writes for its task); all work in worker processes (``agent-worker``, forking, JSON).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis

from agentsys import symbols, tasks
from agentsys.keys import Keys
from agentsys.symbols import SymbolSpec
from bench import common

SYMBOLS = int(os.environ.get("BENCH_SYMBOLS", 10_000))
TICKS = int(os.environ.get("BENCH_TICKS", 200))
NAIVE_SYMBOLS = int(os.environ.get("BENCH_NAIVE_SYMBOLS", 10))
NAIVE_TICKS = int(os.environ.get("BENCH_NAIVE_TICKS", 100))
REPEATS = int(os.environ.get("BENCH_REPEATS", 3))
STEP_S = 60
SHARD = 1000
"""Symbols per shard (and per backfill task) of the batched runs."""
START = datetime(2026, 1, 5, tzinfo=UTC)
LOGS = Path(".bench/logs")


def _env(s: common.Servers, db_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": s.redis_url, "DATABASE_URL": db_url, "KEY_PREFIX": prefix, "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json", "WORKER_WITH_SCHEDULER": "false", "MAINTENANCE_INTERVAL": "3600",
            "PYTHONPATH": str(Path.cwd()),
            "WORKER_PRELOAD": "worker.agents.price,worker.agents.indicator,worker.agents.bang,worker.jobs.ingest,"
                              "worker.jobs.control,bench.naive_jobs"}


def batched_run(s: common.Servers, n_workers: int, n_symbols: int, n_ticks: int) -> dict[str, Any]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(s.redis_url)
    redis.flushdb()
    with common.fresh_database(s, name) as url:
        names = [f"B{i:05d}" for i in range(n_symbols)]
        with psycopg.connect(url) as conn:
            # explicit shards, so a change of the default shard size cannot move this figure
            symbols.add_symbols(conn, [SymbolSpec(symbol=n, shard=i // SHARD) for i, n in enumerate(names)])
            shards = symbols.shards_of(conn)
        env = _env(s, url, name)
        with common.workers(n_workers, env, LOGS / name) as group:
            cpu0 = (group.cpu(), common.cpu_seconds(s.pg_pid), common.cpu_seconds(s.redis_pid))
            end = START.timestamp() + (n_ticks - 1) * STEP_S
            began = time.time()
            ids = []
            with psycopg.connect(url) as conn:
                for shard in shards:
                    members = [n for i, n in enumerate(names) if i // SHARD == shard]
                    run = tasks.submit(redis, conn, Keys(name), type="backfill", params={
                        "symbols": members, "start": START.isoformat(),
                        "end": datetime.fromtimestamp(end, UTC).isoformat(), "interval_s": STEP_S})
                    ids.append(run.id)
                for task_id in ids:
                    done = tasks.wait(conn, task_id, timeout=1800, poll=0.02)
                    if done.state != "finished":
                        raise RuntimeError(f"bench task {task_id} {done.state}: {done.error}")
                last = conn.execute("SELECT max(ended_at) FROM task_runs").fetchone()[0]
                bangs = set(conn.execute("SELECT symbol, ts, to_state FROM bang_events").fetchall())
            cpu1 = (group.cpu(), common.cpu_seconds(s.pg_pid), common.cpu_seconds(s.redis_pid))
            peak = max(group.peak_rss.values())
            peak_pss = max(group.peak_pss.values())
    seconds = last.timestamp() - began
    split = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    return {"ticks_per_s": n_symbols * n_ticks / seconds, "seconds": seconds, "cpu_workers": split[0],
            "cpu_postgres": split[1], "cpu_redis": split[2], "peak_rss": peak, "peak_pss": peak_pss, "bangs": bangs,
            "symbol_ticks": n_symbols * n_ticks, "own_servers": s.pg_pid is not None and s.redis_pid is not None}


def naive_run(s: common.Servers, n_workers: int, n_symbols: int, n_ticks: int) -> dict[str, Any]:
    from bench import naive_jobs

    name = f"naive_{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(s.redis_url)
    redis.flushdb()
    with common.fresh_database(s, name) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(naive_jobs.TABLES)
        env = _env(s, url, name)
        step = STEP_S * 1_000_000
        first = int(START.timestamp()) * 1_000_000
        last = first + (n_ticks - 1) * step
        names = [f"B{i:05d}" for i in range(n_symbols)]
        with common.workers(n_workers, env, LOGS / name) as group:
            cpu0 = (group.cpu(), common.cpu_seconds(s.pg_pid), common.cpu_seconds(s.redis_pid))
            began = time.time()
            q = tasks.queue(redis, "price")
            for n in names:
                q.enqueue("bench.naive_jobs.price", n, first, step, last)
            with psycopg.connect(url, autocommit=True) as conn:
                deadline = time.monotonic() + 3600
                while conn.execute("SELECT count(*) FROM naive_indicators WHERE ts = %s", (last,)).fetchone()[0] \
                        < n_symbols or any(tasks.queue(redis, q).count for q in ("price", "indicator", "bang")) \
                        or any(w.get_state() == "busy" for w in __import__("rq").Worker.all(connection=redis)):
                    if time.monotonic() > deadline:
                        raise RuntimeError("naive run did not finish")
                    time.sleep(0.05)
                ended = time.time()
                bangs = {(s_, datetime.fromtimestamp(ts / 1e6, UTC), {1: "BULL", 2: "BEAR"}[to])
                         for s_, ts, to in conn.execute("SELECT symbol, ts, to_state FROM naive_bangs")}
            cpu1 = (group.cpu(), common.cpu_seconds(s.pg_pid), common.cpu_seconds(s.redis_pid))
    seconds = ended - began
    split = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    return {"ticks_per_s": n_symbols * n_ticks / seconds, "seconds": seconds, "cpu_workers": split[0],
            "cpu_postgres": split[1], "cpu_redis": split[2], "bangs": bangs}


def _split(run: dict[str, Any]) -> str:
    total = run["cpu_workers"] + run["cpu_postgres"] + run["cpu_redis"]
    return (f"cpu s: workers {run['cpu_workers']:.1f}, postgres {run['cpu_postgres']:.1f}, redis {run['cpu_redis']:.1f}"
            f" ({100 * run['cpu_workers'] / total:.0f}/{100 * run['cpu_postgres'] / total:.0f}/"
            f"{100 * run['cpu_redis'] / total:.0f}%) in {run['seconds']:.1f}s wall")


def main() -> None:
    print(f"pipeline: {SYMBOLS} symbols x {TICKS} ticks, periods 9/21/55, median of {REPEATS}", flush=True)
    with common.servers() as s:
        by_workers: dict[int, list[dict[str, Any]]] = {}
        for n in (1, 2):
            runs = by_workers[n] = []
            for i in range(REPEATS):
                run = batched_run(s, n, SYMBOLS, TICKS)
                runs.append(run)
                print(f"    workers={n} run {i + 1}: {run['ticks_per_s']:,.0f} ticks/s; {_split(run)}", flush=True)
        medians = {n: common.median([r["ticks_per_s"] for r in runs]) for n, runs in by_workers.items()}
        mid = {n: sorted(runs, key=lambda r: r["ticks_per_s"])[len(runs) // 2] for n, runs in by_workers.items()}
        for n in (1, 2):
            common.record(f"pipeline.ticks_per_s.workers{n}", medians[n], "symbol-ticks/s", cpu=_split(mid[n]))
        if mid[2]["own_servers"]:  # CPU of a server the bench did not start is not ours to count
            for key, figure in (("cpu_postgres", "pg"), ("cpu_workers", "worker"), ("cpu_redis", "redis")):
                common.record(f"pipeline.{figure}_us_per_symbol_tick", mid[2][key] * 1e6 / mid[2]["symbol_ticks"],
                              "us", note="the median 2-worker run")

        print(f"naive: {NAIVE_SYMBOLS} symbols x {NAIVE_TICKS} ticks, 2 workers, median of {REPEATS}", flush=True)
        check = batched_run(s, 2, NAIVE_SYMBOLS, NAIVE_TICKS)
        naive_runs = []
        for i in range(REPEATS):
            run = naive_run(s, 2, NAIVE_SYMBOLS, NAIVE_TICKS)
            if run["bangs"] != check["bangs"] or not check["bangs"]:
                raise SystemExit(f"naive bangs differ from the batched design's: {len(run['bangs'])} vs "
                                 f"{len(check['bangs'])}")
            naive_runs.append(run)
            print(f"    naive run {i + 1}: {run['ticks_per_s']:,.1f} ticks/s; {_split(run)};"
                  f" bangs equal ({len(run['bangs'])})", flush=True)
        naive = common.median([r["ticks_per_s"] for r in naive_runs])
        common.record("pipeline.naive.ticks_per_s", naive, "symbol-ticks/s",
                      cpu=_split(sorted(naive_runs, key=lambda r: r["ticks_per_s"])[len(naive_runs) // 2]))
        common.record("pipeline.ratio_vs_naive", medians[2] / naive, "x")
        common.record("pipeline.scaling_2_over_1", medians[2] / medians[1], "x")
        rss = common.median([r["peak_rss"] for r in by_workers[2] + by_workers[1]]) / 2**20
        common.record("pipeline.worker_rss_mb.10k_symbols", rss, "MB",
                      note="sum of the worker's and its job process's RSS; pages shared after fork count twice")
        pss = common.median([r["peak_pss"] for r in by_workers[2] + by_workers[1]]) / 2**20
        common.record("pipeline.worker_pss_mb.10k_symbols", pss, "MB", note="the same, shared pages counted once")


if __name__ == "__main__":
    main()
