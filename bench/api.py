"""API benchmarks: ``POST /tasks`` against bare RQ enqueues, latency at a fixed rate, history, listings.

The orchestrator runs as one ``agent-orchestrator`` (uvicorn) process, as deployed; the
load comes from a second process (this module run as ``python -m bench.api client SPEC``)
so the client's CPU is never counted as the server's, and throughput runs send through the lean
client of :mod:`bench.loadgen`, so the client takes little of the CPU the server needs on this
2-core machine (with httpx the client cost as much as the server). Open-loop latencies are measured
from each request's scheduled send time, so a slow server cannot hide its queueing
(coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from redis import Redis

from agentsys import defaults, keys, symbols, task_params, tasks
from agentsys.keys import Keys
from agentsys.symbols import SymbolSpec
from bench import common, loadgen

REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", 1500))
"""Requests per closed-loop throughput run."""
BARE = 3000
"""Enqueues per bare-enqueue run (about as long as a POST run takes at the design's target)."""
WARMUP = 200
"""Requests sent before a throughput run is timed (pool connections, threads, caches)."""
CONCURRENCY = 32
"""Requests in flight in a closed-loop run. Kept under the 40 threads of AnyIO's default limiter: with more,
every thread can be parked in the PostgreSQL pool's wait (10 connections) while the requests that hold the
connections wait for a thread to run their route body, and nothing moves until PoolTimeout (30 s)."""
REPEATS = int(os.environ.get("BENCH_REPEATS", 3))
OPEN_RATE = 300
"""Requests per second of the open-loop run."""
OPEN_SECONDS = 10
OPEN_CONNECTIONS = 32
"""Connections of the open-loop client (under 40, see CONCURRENCY); a request due while all are busy waits
for one, and that wait counts in its latency."""
HISTORY_SYMBOLS = 10
HISTORY_BARS = 600
"""Bars seeded per symbol: more than the 500 a default history request returns."""
HISTORY_CACHED_ROUNDS = 200
HISTORY_COLD_ROUNDS = 40
TASK_ROWS = int(os.environ.get("BENCH_TASK_ROWS", 1_000_000))
LIST_ROUNDS = 20
LIST_FOLLOW = 5
"""Cursor pages followed after each first page of a listing."""
NOTE = {"description": "bench", "priority": 1}
"""The original design's note body, as a client posts it."""
START = datetime(2026, 1, 5, tzinfo=UTC)
LOGS = Path(".bench/logs")
ROOT = Path(__file__).resolve().parent.parent
"""The repository, for the PYTHONPATH of the processes this module starts."""

SEED_ROWS = """
INSERT INTO task_runs (id, type, params, priority, state, progress, result, attempts, worker, queue,
                       enqueued_at, started_at, ended_at, created_at, updated_at)
SELECT md5(g::text), (ARRAY['note', 'pipeline', 'backfill', 'replay'])[1 + g %% 4],
       jsonb_build_object('description', 'bench ' || g), 'normal', st,
       CASE WHEN st = 'finished' THEN 1 ELSE 0 END,
       CASE WHEN st = 'finished' THEN '{"ok": true}'::jsonb END,
       CASE WHEN st = 'queued' THEN 0 ELSE 1 END,
       CASE WHEN st = 'queued' THEN NULL ELSE 'bench-' || g %% 8 END, 'control',
       at, CASE WHEN st = 'queued' THEN NULL ELSE at END,
       CASE WHEN st = 'queued' THEN NULL ELSE at + interval '20 ms' END, at, at
FROM generate_series(1, %(rows)s) AS g,
     LATERAL (SELECT now() - g * interval '1 second' AS at,
                     CASE WHEN g %% 100 < 90 THEN 'finished' WHEN g %% 100 < 95 THEN 'failed'
                          WHEN g %% 100 < 98 THEN 'canceled' ELSE 'queued' END AS st) AS x
"""
"""One statement for every row: 90% finished, 5% failed, 3% canceled, 2% queued, one a second back in time."""


# ---- the load generator (the second process) -------------------------------------------

def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation past the slowest sample)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


@contextlib.asynccontextmanager
async def _lanes(spec: dict[str, Any], n: int) -> AsyncIterator[tuple[list[loadgen.Lane], bytes]]:
    """``n`` connections (closed on exit) and the request they send (see bench.loadgen: the client must cost
    far less than the server it loads)."""
    lanes: list[loadgen.Lane] = []
    try:
        for _ in range(n):
            lanes.append(await loadgen.connect(spec["url"]))
        yield lanes, loadgen.request_bytes(spec["url"], spec["method"], spec["path"], spec["headers"],
                                           spec.get("json"))
    finally:
        for conn in lanes:
            conn.close()


async def _closed(spec: dict[str, Any]) -> dict[str, Any]:
    """A fixed count of requests, ``concurrency`` in flight: throughput."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    async with _lanes(spec, spec["concurrency"]) as (lanes, raw):

        async def run(count: int, record: bool) -> None:
            left = count

            async def lane(conn: loadgen.Lane) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    began = time.perf_counter()
                    status = await conn.send(raw)
                    if record:
                        latencies.append(time.perf_counter() - began)
                        statuses[status] += 1

            await asyncio.gather(*(lane(c) for c in lanes))

        await run(spec["warmup"], False)
        began = time.perf_counter()
        await run(spec["count"], True)
        elapsed = time.perf_counter() - began
    return {"elapsed": elapsed, "statuses": statuses, "latencies_ms": [x * 1000 for x in latencies]}


async def _open(spec: dict[str, Any]) -> dict[str, Any]:
    """Request i is due at t0 + i/rate whatever came back; latency counts from then, waits for a connection too."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    late = 0.0
    idle: asyncio.Queue[loadgen.Lane] = asyncio.Queue()
    async with _lanes(spec, spec["connections"]) as (lanes, raw):
        for conn in lanes:
            idle.put_nowait(conn)

        async def one(at: float | None) -> None:
            conn = await idle.get()
            try:
                status = await conn.send(raw)
            finally:
                idle.put_nowait(conn)
            if at is not None:
                latencies.append(time.perf_counter() - at)
                statuses[status] += 1

        await asyncio.gather(*(one(None) for _ in range(2 * spec["connections"])))  # warm before the clock
        n = int(spec["rate"] * spec["seconds"])
        t0 = time.perf_counter() + 0.05
        pending = []
        for i in range(n):
            at = t0 + i / spec["rate"]
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, time.perf_counter() - at)
            pending.append(asyncio.create_task(one(at)))
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - t0
    return {"elapsed": elapsed, "statuses": statuses, "late_ms": late * 1000,
            "latencies_ms": [x * 1000 for x in latencies]}


def _serial(spec: dict[str, Any]) -> dict[str, Any]:
    """One request at a time (latency, not throughput); optionally DEL a key before each."""
    statuses: Counter[int] = Counter()
    cache: Counter[str] = Counter()
    latencies: list[float] = []
    redis = Redis.from_url(spec["redis"]) if spec.get("delete") else None
    with httpx.Client(base_url=spec["url"], headers=spec["headers"], timeout=60) as client:

        def get(path: str) -> httpx.Response:
            began = time.perf_counter()
            r = client.get(path)
            latencies.append(time.perf_counter() - began)
            statuses[r.status_code] += 1
            cache[r.headers.get("x-cache", "-")] += 1
            return r

        for _ in range(spec["rounds"]):
            for i, path in enumerate(spec["paths"]):
                if redis is not None:
                    redis.delete(spec["delete"][i])
                r = get(path)
                for _ in range(spec.get("follow", 0)):
                    cursor = r.json().get("next_cursor")
                    if not cursor:
                        break
                    r = get(f"{path}{'&' if '?' in path else '?'}cursor={cursor}")  # params= would drop the query
    return {"statuses": statuses, "cache": cache, "latencies_ms": [x * 1000 for x in latencies]}


def client_main(raw: str) -> None:
    """Entry point of the load process: run one spec, print its result as JSON."""
    import uvloop

    spec = json.loads(raw)
    if spec["mode"] == "serial":
        result = _serial(spec)
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(_closed(spec) if spec["mode"] == "closed" else _open(spec))
    print(json.dumps(result))


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run a spec in a separate load process and return what it measured."""
    done = subprocess.run([sys.executable, "-m", "bench.api", "client", json.dumps(spec)], capture_output=True,
                          check=False, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"load process failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["statuses"] = {int(k): v for k, v in result["statuses"].items()}
    return result


def _only(result: dict[str, Any], status: int, what: str) -> None:
    if set(result["statuses"]) != {status}:
        raise SystemExit(f"{what}: expected only {status} answers, got {result['statuses']}")


# ---- the server under test ----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(s: common.Servers, db_url: str, prefix: str) -> dict[str, str]:
    """What the orchestrator and the workers read: one database and one key prefix per phase."""
    return {"REDIS_URL": s.redis_url, "DATABASE_URL": db_url, "KEY_PREFIX": prefix, "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json", "WORKER_WITH_SCHEDULER": "false", "MAINTENANCE_INTERVAL": "3600",
            "PYTHONPATH": str(ROOT),
            "WORKER_PRELOAD": "worker.agents.price,worker.agents.indicator,worker.agents.bang,worker.jobs.ingest,"
                              "worker.jobs.control"}


@contextlib.contextmanager
def orchestrator(env: dict[str, str], token: str, log: Path) -> Iterator[tuple[str, int]]:
    """One ``agent-orchestrator`` process on a free loopback port: ``(url, pid)``."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen([str(common.VENV_BIN / "agent-orchestrator"), "--host", "127.0.0.1", "--port",
                                 str(port)], env={**os.environ, **env, "API_TOKEN": token}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the orchestrator exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the orchestrator did not listen; see {log}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _redis_calls(redis: Redis) -> int:
    """Commands Redis has processed so far (INFO itself aside)."""
    stats = redis.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))


# ---- the phases ---------------------------------------------------------------------------

def bare_enqueue(redis: Redis, n: int) -> float:
    """What ``tasks.submit`` asks of RQ for a note, and nothing else: the API's ceiling."""
    spec = tasks.TASK_TYPES["note"]
    params = task_params.validate("note", {"description": NOTE["description"]})
    q = tasks.queue(redis, keys.CONTROL_QUEUE)
    ids = [uuid.uuid4().hex for _ in range(n)]
    began = time.perf_counter()
    for task_id in ids:
        q.enqueue(spec.func, kwargs={"task_id": task_id, "params": params}, job_id=task_id, at_front=False,
                  job_timeout=spec.timeout, result_ttl=defaults.RESULT_TTL, failure_ttl=defaults.FAILURE_TTL,
                  description=f"note {task_id}")
    return n / (time.perf_counter() - began)


def post_phase(s: common.Servers, token: str) -> None:
    """Throughput of ``POST /tasks`` beside bare enqueues, then latency at a fixed 300 requests/s."""
    name = f"api_{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(s.redis_url)
    headers = {"Authorization": f"Bearer {token}"}
    post: dict[str, Any] = {"url": "", "headers": headers, "method": "POST", "path": "/tasks", "json": NOTE}
    with common.fresh_database(s, name) as url, orchestrator(_env(s, url, name), token, LOGS / name / "api.log") \
            as (base, pid):
        post["url"] = base
        bare, api, cpu_ms, calls = [], [], [], []
        for i in range(REPEATS):
            redis.flushdb()
            bare.append(bare_enqueue(redis, BARE))
            redis.flushdb()
            cpu0, calls0 = common.cpu_seconds(pid), _redis_calls(redis)
            run = load({**post, "mode": "closed", "count": REQUESTS, "warmup": WARMUP, "concurrency": CONCURRENCY})
            _only(run, 202, "POST /tasks")
            total = REQUESTS + WARMUP
            cpu_ms.append((common.cpu_seconds(pid) - cpu0) * 1000 / total)
            calls.append((_redis_calls(redis) - calls0) / total)
            api.append(REQUESTS / run["elapsed"])
            print(f"    run {i + 1}: bare enqueue {bare[-1]:,.0f}/s, POST /tasks {api[-1]:,.0f}/s "
                  f"(p50 {_pct(run['latencies_ms'], 50):.1f} ms at {CONCURRENCY} in flight; server "
                  f"{cpu_ms[-1]:.2f} cpu-ms and {calls[-1]:.1f} Redis commands a request)", flush=True)
        bare_rps, api_rps = common.median(bare), common.median(api)
        common.record("api.bare_enqueue.rps", bare_rps, "req/s", runs=[round(x) for x in bare])
        common.record("api.post_tasks.rps", api_rps, "req/s", runs=[round(x) for x in api],
                      concurrency=CONCURRENCY, server_cpu_ms_per_req=round(common.median(cpu_ms), 3),
                      redis_commands_per_req=round(common.median(calls), 2))
        common.record("api.post_tasks.ratio_vs_bare", api_rps / bare_rps, "x", target=0.75)

        redis.flushdb()
        run = load({**post, "mode": "open", "rate": OPEN_RATE, "seconds": OPEN_SECONDS, "connections": OPEN_CONNECTIONS})
        _only(run, 202, "POST /tasks at a fixed rate")
        lat = run["latencies_ms"]
        common.record(f"api.post_tasks.p99_ms_at_{OPEN_RATE}rps", _pct(lat, 99), "ms", p50=round(_pct(lat, 50), 2),
                      max=round(max(lat), 2), n=len(lat), achieved_rps=round(len(lat) / run["elapsed"], 1),
                      client_late_ms=round(run["late_ms"], 2))
    redis.flushdb()
    redis.close()


def seed_history(s: common.Servers, url: str, name: str, names: list[str]) -> None:
    """Prices, EMAs and bangs through the real pipeline: a backfill task run by a worker."""
    redis = Redis.from_url(s.redis_url)
    with psycopg.connect(url) as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in names])
        conn.commit()
        with common.workers(1, _env(s, url, name), LOGS / name):
            end = START + timedelta(minutes=HISTORY_BARS - 1)
            run = tasks.submit(redis, conn, Keys(name), type="backfill", params={
                "symbols": names, "start": START.isoformat(), "end": end.isoformat(), "interval_s": 60})
            done = tasks.wait(conn, run.id, timeout=300, poll=0.05)
            if done.state != "finished":
                raise RuntimeError(f"seeding backfill {run.id} {done.state}: {done.error}")
    redis.close()


def history_phase(s: common.Servers, token: str) -> None:
    """``GET /symbols/{s}/history`` p99 with the cache warm (one Redis round trip) and missing (PostgreSQL)."""
    name = f"api_{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(s.redis_url)
    redis.flushdb()
    names = [f"H{i:03d}" for i in range(HISTORY_SYMBOLS)]
    k = Keys(name)
    with common.fresh_database(s, name) as url:
        seed_history(s, url, name, names)
        with orchestrator(_env(s, url, name), token, LOGS / name / "api.log") as (base, _):
            spec: dict[str, Any] = {"url": base, "headers": {}, "mode": "serial",
                                    "paths": [f"/symbols/{n}/history" for n in names]}
            warm = load({**spec, "rounds": 1})
            _only(warm, 200, "history warm-up")
            body = httpx.get(f"{base}/symbols/{names[0]}/history", timeout=10).json()
            if len(body["prices"]) != 500 or body["prices"][-1]["ema_slow"] is None:
                raise SystemExit(f"history of {names[0]} is not what was seeded: {len(body['prices'])} prices")
            for label, rounds, delete, expect in (("cached", HISTORY_CACHED_ROUNDS, None, "hit"),
                                                  ("cold", HISTORY_COLD_ROUNDS, [k.history(n) for n in names],
                                                   "miss")):
                run = load({**spec, "rounds": rounds, "delete": delete, "redis": s.redis_url})
                _only(run, 200, f"history {label}")
                if set(run["cache"]) != {expect}:
                    raise SystemExit(f"history {label}: expected X-Cache {expect} only, got {run['cache']}")
                lat = run["latencies_ms"]
                common.record(f"api.history.{label}.p99_ms", _pct(lat, 99), "ms", p50=round(_pct(lat, 50), 2),
                              n=len(lat), x_cache=expect, prices=len(body["prices"]), bangs=len(body["bangs"]))
    redis.flushdb()
    redis.close()


def _check_pages(base: str, path: str) -> None:
    """A followed cursor keeps the filter and moves back in time (else the figure measures something else)."""
    first = httpx.get(f"{base}{path}", timeout=30).json()
    second = httpx.get(f"{base}{path}&cursor={first['next_cursor']}", timeout=30).json()
    items = first["items"] + second["items"]
    if len(items) != 100 or {i["state"] for i in items} != {"finished"} \
            or second["items"][0]["created_at"] >= first["items"][-1]["created_at"]:
        raise SystemExit(f"GET {path}: cursor pages are not the filtered, older rows they should be")


def tasks_list_phase(s: common.Servers, token: str) -> None:
    """``GET /tasks`` p99 (filtered first pages and cursor pages) over a million ``task_runs`` rows."""
    name = f"api_{uuid.uuid4().hex[:8]}"
    with common.fresh_database(s, name) as url:
        began = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            # Building the listing indexes once after the load is several times faster than updating them row by
            # row; they are re-created from their own definitions, so the schema stays the migrations'.
            indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                                   " AND tablename = 'task_runs' AND indexname <> 'task_runs_pkey'").fetchall()
            conn.execute("SET maintenance_work_mem = '256MB'")
            with conn.transaction():
                for index, _ in indexes:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
                conn.execute(SEED_ROWS, {"rows": TASK_ROWS})
                for _, definition in indexes:
                    conn.execute(definition)
            conn.execute("ANALYZE task_runs")
        print(f"    {TASK_ROWS:,} task_runs rows inserted and analyzed in {time.perf_counter() - began:.1f}s",
              flush=True)
        with orchestrator(_env(s, url, name), token, LOGS / name / "api.log") as (base, _):
            paths = ["/tasks?state=finished&limit=50", "/tasks?limit=50", "/tasks?type=backfill&limit=50",
                     "/tasks?state=failed&type=note&limit=50", "/tasks?worker=bench-3&limit=50",
                     "/tasks?state=queued&limit=50"]
            _check_pages(base, paths[0])
            spec: dict[str, Any] = {"url": base, "headers": {}, "mode": "serial", "paths": paths, "follow": LIST_FOLLOW}
            _only(load({**spec, "rounds": 2}), 200, "GET /tasks warm-up")
            run = load({**spec, "rounds": LIST_ROUNDS})
            _only(run, 200, "GET /tasks")
            lat = run["latencies_ms"]
            if len(lat) != LIST_ROUNDS * len(paths) * (1 + LIST_FOLLOW):
                raise SystemExit(f"GET /tasks: a listing ended early ({len(lat)} requests)")
            common.record("api.tasks_list.p99_ms_1m_rows", _pct(lat, 99), "ms", p50=round(_pct(lat, 50), 2),
                          n=len(lat), rows=TASK_ROWS, queries=paths, cursor_pages_each=LIST_FOLLOW)


def main() -> None:
    print(f"api: one orchestrator process; {REQUESTS} POSTs at {CONCURRENCY} in flight, median of {REPEATS}; "
          f"{OPEN_RATE} req/s open loop for {OPEN_SECONDS}s; history; GET /tasks over {TASK_ROWS:,} rows", flush=True)
    token = secrets.token_urlsafe(24)
    with common.servers() as s:
        post_phase(s, token)
        history_phase(s, token)
        tasks_list_phase(s, token)


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client_main(sys.argv[2])
    else:
        main()
