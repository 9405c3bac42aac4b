"""Gateway latency: from a bang job's commit to a WebSocket client, under a live 10,000-symbol universe.

Setup: 10,000 synthetic symbols (10 shards) and 2 forking workers running the agents,
downstream first (see QUEUES). ``backfill`` tasks seed the last
WARM seconds of 1 s bars (the 55-period EMA needs 55 prices before a state, hence a
bang, exists); then the universe ticks once per second for LIVE_S seconds as a deployment's
does (the scheduler's ``universe-tick``: a ``run_agent`` task for the price agent, which
brings every symbol up to the latest one-second bar), and DRAIN_S more seconds at most
let the pipeline catch up. The gateway (``agent-gateway``, production defaults) runs as a subprocess, and 100
WebSocket clients (asyncio, ``websockets``) in a second one, each subscribed to every
bang and to the price and indicator updates of 5 symbols. Every bang committed by the
end of the drain is timed at every client.

Clock, per bang event and per client: the client's ``time.time()`` when ``recv()`` hands
it the message holding the event, minus the ``committed_at`` of the event's bang message
on Redis Pub/Sub. The bang job takes that ``time.time()`` right after ``COMMIT`` returned,
then invalidates its symbols' cached history (one script call) and publishes. So the
figure spans the invalidation, PUBLISH, Redis, the gateway (parse, filter, queue, send)
and the client's event loop.
Events the gateway delivers from PostgreSQL instead (``"source": "db"``, no
``committed_at``: its reconcile read saw the commit before the Pub/Sub message came) are
timed against the ``committed_at`` of their own Pub/Sub message, which a direct Redis
subscriber in this process reads; they can come out negative. All processes share one
host clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from redis import Redis

from agentsys import symbols, tasks
from agentsys.keys import Keys
from agentsys.models import TaskRun
from agentsys.symbols import SymbolSpec
from agentsys.timefmt import iso_s
from bench import common

SYMBOLS = int(os.environ.get("BENCH_GATEWAY_SYMBOLS", 10_000))
CLIENTS = int(os.environ.get("BENCH_GATEWAY_CLIENTS", 100))
CLIENT_SYMBOLS = 5
"""Symbols whose price and indicator updates each client asks for."""
WARM = int(os.environ.get("BENCH_GATEWAY_WARM", 100))
"""Seconds (1 s bars) of history seeded before the live ticks: more than the slow EMA's 55."""
LIVE_S = int(os.environ.get("BENCH_GATEWAY_SECONDS", 30))
"""Seconds of live ticking (one pipeline task per second)."""
DRAIN_S = float(os.environ.get("BENCH_GATEWAY_DRAIN", 30))
"""Seconds after the last tick to let the pipeline catch up; bangs committed by then are measured."""
GRACE_S = 3.0
"""Seconds to let the last messages arrive (the gateway's reconcile runs every second)."""
QUEUES = ("control,bang,indicator,price", "control,bang,indicator,price")
"""Each worker's queues: the workers' default (``keys.WORKER_QUEUES``): control, then the
agents downstream first.

RQ takes jobs in queue order, and a 10,000-symbol tick can cost the agents more than a
second of work: price first, the workers would ingest tick after tick while the bang agent
waits, and the bangs of the live phase would all come after it, in a few huge batches.
"""
TARGET_P99_MS = 50.0
LOGS = Path(".bench/logs")


def _env(s: common.Servers, db_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": s.redis_url, "DATABASE_URL": db_url, "KEY_PREFIX": prefix, "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json", "WORKER_WITH_SCHEDULER": "false", "MAINTENANCE_INTERVAL": "3600",
            "PRICE_INTERVAL_S": "1", "PYTHONPATH": str(Path.cwd()),
            "WORKER_PRELOAD": "worker.agents.price,worker.agents.indicator,worker.agents.bang,worker.jobs.ingest,"
                              "worker.jobs.control"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM this one process (by pid), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def gateway(env: dict[str, str], log_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``agent-gateway`` on a free loopback port, ready (subscribed, with a cursor)."""
    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "gateway.log", "ab") as out:
        proc = subprocess.Popen([str(common.VENV_BIN / "agent-gateway"), "--host", "127.0.0.1", "--port", str(port)],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}; see {log_dir / 'gateway.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).json().get("cursor"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("gateway not ready after 30 s")
            time.sleep(0.1)
        yield url, proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def clients(url: str, filters: list[list[str]], work: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """The client process, once every client is subscribed; its results land in the yielded path on exit."""
    config, out = work / "clients.json", work / "received.json"
    config.write_text(json.dumps({"url": url, "filters": filters, "out": str(out)}))
    with open(work / "clients.log", "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench.gateway", "clients", str(config)],
                                stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            raise RuntimeError(f"clients did not get ready ({line!r}); see {work / 'clients.log'}")
        yield out, proc
    finally:
        _stop(proc, timeout=60)


@dataclass
class Commits:
    """A direct Redis subscriber: every bang event's ``committed_at``, and Pub/Sub's own latency."""

    redis_url: str
    channel: str
    at: dict[int, float] = field(default_factory=dict)
    message_of: dict[int, int] = field(default_factory=dict)
    redis_ms: list[float] = field(default_factory=list)
    messages: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        redis = Redis.from_url(self.redis_url)
        with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            pubsub.subscribe(self.channel)
            self._ready.set()
            while not self._stop.is_set():
                item = pubsub.get_message(timeout=0.2)
                if item is None or item["type"] != "message":
                    continue
                now = time.time()
                message = json.loads(item["data"])
                committed = float(message["committed_at"])
                self.messages += 1
                self.redis_ms.append((now - committed) * 1000)
                for event in message["events"]:
                    self.at[int(event["id"])] = committed
                    self.message_of[int(event["id"])] = self.messages
        redis.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Commits]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("could not subscribe to the bang channel")
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(5)


def _seed(redis: Redis, url: str, prefix: str, names: list[str]) -> int:
    """Backfill WARM one-second bars ending a second ago; returns the last bar (epoch s)."""
    last = int(time.time()) - 1
    with psycopg.connect(url) as conn:
        ids = []
        for shard in symbols.shards_of(conn):
            members = [r[0] for r in conn.execute("SELECT symbol FROM symbols WHERE shard = %s", (shard,))]
            run = tasks.submit(redis, conn, Keys(prefix), type="backfill", params={
                "symbols": members, "start": iso_s(last - WARM + 1), "end": iso_s(last), "interval_s": 1})
            ids.append(run.id)
        for task_id in ids:
            done = tasks.wait(conn, task_id, timeout=600, poll=0.05)
            if done.state != "finished":
                raise RuntimeError(f"backfill {task_id} {done.state}: {done.error}")
    return last


def _tick(redis: Redis, url: str, prefix: str, first: int) -> tuple[list[str], float]:
    """The universe tick of a deployment, once per second for LIVE_S seconds: a ``run_agent``
    task for the price agent on every shard (what the scheduler's ``universe-tick`` submits),
    which brings every symbol up to the latest one-second bar; returns ids and start."""
    ids = []
    with psycopg.connect(url) as conn:
        began = time.time()
        for k in range(LIVE_S):
            delay = first + k + 0.02 - time.time()
            if delay > 0:
                time.sleep(delay)
            run = tasks.submit(redis, conn, Keys(prefix), type="run_agent", params={"agent": "price"})
            ids.append(run.id)
    return ids, began


def _latencies(received: dict[str, Any], live: set[int], commit_at: dict[int, float]) -> dict[str, Any]:
    """Per (bang, client) latency in ms, and per message: commit to first client, first to last client."""
    samples: list[float] = []
    per_message: list[float] = []
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    stamp: dict[int, float] = {}
    missing = from_db = untimed = 0
    for client in received["clients"]:
        got: set[int] = set()
        for arrival, which in client["bangs"]:
            committed, source, event_ids = received["messages"][which]
            mine = [i for i in event_ids if i in live and i not in got]
            got.update(mine)
            from_db += len(mine) if source == "db" else 0
            stamps = [commit_at.get(i, committed) for i in mine]
            untimed += sum(c is None for c in stamps)
            timed = [c for c in stamps if c is not None]
            samples.extend((arrival - c) * 1000 for c in timed)
            if timed:
                per_message.append((arrival - timed[0]) * 1000)
                stamp[which] = timed[0]
                first[which] = min(first.get(which, arrival), arrival)
                last[which] = max(last.get(which, arrival), arrival)
        missing += len(live - got)
    return {"samples": samples, "per_message": per_message, "missing": missing, "from_db": from_db,
            "untimed": untimed, "first_client_ms": [(first[m] - stamp[m]) * 1000 for m in first],
            "fanout_spread_ms": [(last[m] - first[m]) * 1000 for m in first]}


def _drain(conn: psycopg.Connection, ids: list[str], last_bar: int) -> tuple[list[TaskRun], int]:
    """Wait until the bang agent has covered ``last_bar`` for every symbol, at most DRAIN_S
    seconds; returns the tick tasks and how many symbols were still behind."""
    deadline = time.monotonic() + DRAIN_S
    while True:
        behind = int(conn.execute(
            "SELECT count(*) FROM symbols s LEFT JOIN progress g ON g.agent = 'bang' AND g.symbol = s.symbol"
            " WHERE g.last_ts IS NULL OR g.last_ts < to_timestamp(%s)", (last_bar,)).fetchone()[0])
        if not behind or time.monotonic() > deadline:
            return [tasks.get(conn, i) for i in ids], behind
        time.sleep(0.2)


def _percentile(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


class Group:
    """Worker groups (from common.workers) counted as one."""

    def __init__(self, groups: list[common.Workers]) -> None:
        self.groups = groups

    def cpu(self) -> float:
        return sum(g.cpu() for g in self.groups)


@contextlib.contextmanager
def agent_workers(env: dict[str, str], log_dir: Path) -> Iterator[Group]:
    """One worker per entry of QUEUES (common.workers starts them alike, so one group each)."""
    with contextlib.ExitStack() as stack:
        yield Group([stack.enter_context(common.workers(1, env, log_dir / f"w{i}", args=(
            "--queues", queues, "--name", f"bench-{i}"))) for i, queues in enumerate(QUEUES)])


def _job_stats(log_dir: Path) -> dict[str, Any]:
    """Median duration of the workers' jobs per agent, and symbol-ticks per bang job (their INFO lines)."""
    durations: dict[str, list[float]] = {}
    bang_ticks: list[float] = []
    for path in log_dir.rglob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"job finished"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                durations.setdefault(str(entry.get("agent")), []).append(float(entry["duration_ms"]))
                if entry.get("agent") == "bang" and entry.get("ticks"):
                    bang_ticks.append(float(entry["ticks"]))
    return {"job_ms_p50": {a: round(common.median(d), 1) for a, d in sorted(durations.items())},
            "jobs": {a: len(d) for a, d in sorted(durations.items())},
            "symbol_ticks_per_bang_job_p50": common.median(bang_ticks) if bang_ticks else 0}


def measure(s: common.Servers) -> dict[str, Any]:
    name = f"gw_{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(s.redis_url)
    redis.flushdb()
    work = LOGS / name
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    with common.fresh_database(s, name) as url:
        names = [f"B{i:05d}" for i in range(SYMBOLS)]
        with psycopg.connect(url) as conn:
            symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in names])
        env = _env(s, url, name)
        with agent_workers({**env, "LOG_LEVEL": "INFO"}, work) as group:
            t = time.monotonic()
            last = _seed(redis, url, name, names)
            print(f"    seeded {SYMBOLS} symbols x {WARM} one-second bars in {time.monotonic() - t:.1f}s", flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT coalesce(max(id), 0) FROM bang_events").fetchone()
            floor = int(row[0]) if row else 0
            filters = [rng.sample(names, CLIENT_SYMBOLS) for _ in range(CLIENTS)]
            with gateway(env, work) as (gw_url, gw), clients(gw_url, filters, work) as (out, cl), \
                    Commits(s.redis_url, Keys(name).channel_bangs).running() as commits:
                pids = (gw.pid, cl.pid, s.pg_pid, s.redis_pid)
                cpu0 = (group.cpu(), *map(common.cpu_seconds, pids))
                start = max(last + 1, int(time.time()) + 1)
                ids, began = _tick(redis, url, name, start)
                with psycopg.connect(url, autocommit=True) as conn:
                    runs, behind = _drain(conn, ids, start + LIVE_S - 2)
                    inserted: dict[int, float] = dict(conn.execute(
                        "SELECT id, extract(epoch FROM created_at)::float8 FROM bang_events WHERE id > %s",
                        (floor,)).fetchall())
                live = set(inserted)
                deadline = time.monotonic() + 10
                while not live <= commits.at.keys() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(GRACE_S)
                wall = time.time() - began
                cpu = [b - a for a, b in zip(cpu0, (group.cpu(), *map(common.cpu_seconds, pids)), strict=True)]
            received = json.loads(out.read_text())
        jobs = _job_stats(work)
    found = _latencies(received, live, commits.at)
    return {
        **found, "bangs": len(live),
        "messages": len({commits.message_of[i] for i in live if i in commits.message_of}), "ticks": len(ids),
        "failed": [f"{r.state.value}: {(r.error or '')[:200]}" for r in runs if r.ended and r.state != "finished"],
        "unfinished": sum(not r.ended for r in runs), "behind": behind, "redis_ms": commits.redis_ms,
        "stamp_after_insert_ms": [(commits.at[i] - at) * 1000 for i, at in inserted.items() if i in commits.at],
        "task_s": [(r.ended_at - r.created_at).total_seconds() for r in runs if r.state == "finished" and r.ended_at],
        "loop_lag": received["loop_lag_ms"], "clients": len(received["clients"]),
        "closed": [c["closed"] for c in received["clients"] if c["closed"] is not None],
        "updates": sum(c["updates"] for c in received["clients"]), **jobs,
        "cpu": (f"cpu s over {wall:.0f}s: workers {cpu[0]:.1f}, gateway {cpu[1]:.1f}, clients {cpu[2]:.1f}, "
                f"postgres {cpu[3]:.1f}, redis {cpu[4]:.1f}"),
    }


def _ms(values: list[float], q: float) -> float:
    return round(_percentile(values, q), 3)


def main() -> None:
    print(f"gateway: {SYMBOLS} symbols ticking 1/s for {LIVE_S}s, {len(QUEUES)} workers ({'; '.join(QUEUES)}),"
          f" {CLIENTS} WebSocket clients"
          f" (all bangs + updates of {CLIENT_SYMBOLS} symbols each)", flush=True)
    with common.servers() as s:
        run = measure(s)
    samples = run["samples"]
    if not samples:
        raise SystemExit(f"no bang reached a client ({run['bangs']} bangs committed while live)")
    extra = {
        "bangs": run["bangs"], "bang_messages": run["messages"], "samples": len(samples), "clients": run["clients"],
        "ticks": run["ticks"], "tick_tasks_failed": len(run["failed"]), "tick_tasks_unfinished": run["unfinished"],
        "symbols_behind_at_cutoff": run["behind"],
        "missing": run["missing"], "from_db": run["from_db"], "untimed": run["untimed"],
        "negative": sum(v < 0 for v in samples), "clients_closed": run["closed"], "max_ms": _ms(samples, 100),
        "per_message_p50_ms": _ms(run["per_message"], 50), "per_message_p99_ms": _ms(run["per_message"], 99),
        "first_client_p50_ms": _ms(run["first_client_ms"], 50), "first_client_p99_ms": _ms(run["first_client_ms"], 99),
        "fanout_spread_p50_ms": _ms(run["fanout_spread_ms"], 50),
        "fanout_spread_p99_ms": _ms(run["fanout_spread_ms"], 99),
        "redis_subscriber_p50_ms": _ms(run["redis_ms"], 50), "redis_subscriber_p99_ms": _ms(run["redis_ms"], 99),
        "stamp_after_insert_p50_ms": _ms(run["stamp_after_insert_ms"], 50),
        "client_loop_lag_p99_ms": _ms(run["loop_lag"], 99),
        "tick_task_p50_s": _ms(run["task_s"], 50), "tick_task_max_s": _ms(run["task_s"], 100),
        "job_ms_p50": run["job_ms_p50"], "jobs": run["jobs"],
        "symbol_ticks_per_bang_job_p50": run["symbol_ticks_per_bang_job_p50"],
        "updates_received": run["updates"], "cpu": run["cpu"], "target_p99_ms": TARGET_P99_MS,
        "worker_queues": list(QUEUES),
    }
    print(f"    {run['bangs']} bangs in {run['messages']} messages over {run['ticks']} ticks, {len(samples):,} samples;"
          f" missing {run['missing']}, via db {run['from_db']}, closed clients {len(run['closed'])}", flush=True)
    print(f"    {DRAIN_S:g}s after the last tick: symbols behind its bar {run['behind']}/{SYMBOLS}, tick tasks"
          f" unfinished {run['unfinished']}/{run['ticks']}; tick task run time p50 {extra['tick_task_p50_s']}s;"
          f" job ms p50 {extra['job_ms_p50']}; symbol-ticks per bang job p50 "
          f"{extra['symbol_ticks_per_bang_job_p50']:.0f}", flush=True)
    print(f"    per message: commit to first client p50 {extra['first_client_p50_ms']} ms"
          f" p99 {extra['first_client_p99_ms']} ms, first to last client p50 {extra['fanout_spread_p50_ms']} ms"
          f" p99 {extra['fanout_spread_p99_ms']} ms", flush=True)
    print(f"    per (message, client) p50 {extra['per_message_p50_ms']} ms p99 {extra['per_message_p99_ms']} ms;"
          f" commit stamp->direct redis subscriber p50 {extra['redis_subscriber_p50_ms']} ms"
          f" p99 {extra['redis_subscriber_p99_ms']} ms; insert->stamp p50 {extra['stamp_after_insert_p50_ms']} ms;"
          f" client loop lag p99 {extra['client_loop_lag_p99_ms']} ms", flush=True)
    print(f"    {run['cpu']}", flush=True)
    for failure in run["failed"][:3]:
        print(f"    tick task failed: {failure}", flush=True)
    common.record("gateway.bang_to_client.p50_ms", common.median(samples), "ms", **extra)
    p99 = _percentile(samples, 99)
    common.record("gateway.bang_to_client.p99_ms", p99, "ms", **extra, meets_target=p99 <= TARGET_P99_MS)


# ---- the client process ---------------------------------------------------------------

LOOP_PROBE_S = 0.01
"""Seconds between two probes of the client process's event-loop lag."""


@dataclass
class Parsed:
    """Bang messages parsed once: every client gets the same text (the gateway renders it once per filter)."""

    index: dict[str, int] = field(default_factory=dict)
    messages: list[tuple[float | None, str | None, list[int]]] = field(default_factory=list)

    def of(self, text: str) -> int:
        found = self.index.get(text)
        if found is None:
            message = json.loads(text)
            found = self.index[text] = len(self.messages)
            self.messages.append((message.get("committed_at"), message.get("source"),
                                  [e["id"] for e in message["events"]]))
        return found


async def _client(url: str, symbols_: list[str], ready: asyncio.Event, count: list[int], total: int,
                  into: dict[str, Any], parsed: Parsed) -> None:
    """One client: subscribe, then note (arrival, message) per bang message and count the updates."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    bangs: list[Any] = into["bangs"]
    async with connect(url.replace("http://", "ws://") + "/ws", open_timeout=30, max_size=2**24,
                       close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "subscribe", "kinds": ["bang", "update"],
                                  "symbols": {"bang": None, "update": symbols_}}))
        while json.loads(await ws.recv())["kind"] != "subscribed":
            pass
        count[0] += 1
        if count[0] == total:
            ready.set()
        try:
            async for text in ws:
                arrival = time.time()
                if isinstance(text, str) and text.startswith('{"kind":"bang"'):
                    bangs.append((arrival, parsed.of(text)))
                else:
                    into["updates"] += 1
        except ConnectionClosed as closed:
            into["closed"] = closed.rcvd.code if closed.rcvd else -1


async def _probe(lags: list[float]) -> None:
    while True:
        begin = time.perf_counter()
        await asyncio.sleep(LOOP_PROBE_S)
        lags.append((time.perf_counter() - begin - LOOP_PROBE_S) * 1000)


async def _clients_main(config: dict[str, Any]) -> dict[str, Any]:
    """Connect and subscribe every client, say ``ready``, keep what arrives until SIGTERM."""
    loop = asyncio.get_running_loop()
    stop, ready = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    results: list[dict[str, Any]] = [{"bangs": [], "updates": 0, "closed": None} for _ in config["filters"]]
    count: list[int] = [0]
    lags: list[float] = []
    parsed = Parsed()
    running = [asyncio.create_task(_client(config["url"], f, ready, count, len(results), r, parsed))
               for f, r in zip(config["filters"], results, strict=True)]
    await asyncio.wait([asyncio.create_task(ready.wait()), *running], return_when=asyncio.FIRST_COMPLETED)
    for task in running:
        if task.done():
            task.result()  # a client that failed to connect or subscribe: raise its error
    print("ready", flush=True)
    probe = asyncio.create_task(_probe(lags))
    await stop.wait()
    for task in (*running, probe):
        task.cancel()
    await asyncio.gather(*running, probe, return_exceptions=True)
    return {"clients": results, "messages": parsed.messages, "loop_lag_ms": lags}


def clients_process(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    Path(config["out"]).write_text(json.dumps(asyncio.run(_clients_main(config))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["clients"]:
        clients_process(sys.argv[2])
    else:
        main()
