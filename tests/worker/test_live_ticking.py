"""A small universe ticking live under the real ``agent-scheduler``, judged by its outcomes.

2,000 synthetic symbols (one shard of the default size), two ``agent-worker`` processes with
the default queues, and ``agent-scheduler`` at PRICE_INTERVAL_S=1 (its ``universe-tick`` runs
the price agent on every shard each second) tick for 20 s while a ``note`` is submitted each
second. Within 15 s of the last tick, every symbol's bang progress must be at the last bar,
every task (the ticks, the notes) finished and no job failed. Only these outcomes are read (the
database and RQ's registries), never which jobs ran or how fast: the live path's jobs may
change (a fused live step), these outcomes may not. ``BENCH=live make bench`` measures speed.

**The last bar.** The last tick is the newest one whose task was submitted, read from
``task_runs`` after the scheduler has exited: a tick's task id is derived from its tick
(``tick_task_id``), so the ids map back to their ticks exactly, and a tick fired between our
look and the SIGTERM counts (``latest_bar`` at the stop is not exact: that second's tick may
not have fired yet). But a price job brings its shard up to ``latest_bar`` of the clock *when
it runs*, not to the bar of the tick that triggered it: a run that starts after the next bar
opened (behind a backlog of agent work, or a job's MAX_JOB_TICKS continuation, on a busy
machine) fetches bars no tick asked for, and two shards' last runs may read different seconds.
So no single bar is exact for every symbol (nor is the newest price progress); what is exact,
per symbol, is its newest stored price, and the test asserts that every symbol's bang progress
is exactly its newest stored price, and that this is the last tick's bar or later. On a machine
that keeps up, that is the last tick's bar for every symbol (the scheduler is stopped just after
a tick, leaving that tick's jobs the rest of the second).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest
from redis import Redis
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from agentsys import keys, symbols, tasks
from agentsys.exitcodes import RET_OK
from agentsys.symbols import SymbolSpec
from tests.support import procs, wait
from tests.support.faults import Workers
from tests.support.ticks import tick_seconds
from worker.sources.fetch import latest_bar

pytestmark = pytest.mark.slow

SYMBOLS = 2000
TICK_S = 20
"""Seconds of ticking: the scheduler stops right after the first tick this long after its first."""
CATCH_UP_S = 15
"""Seconds after the last tick by which every outcome must hold."""
INTERVAL_S = 1
"""PRICE_INTERVAL_S of the scheduler and the workers: one bar a second."""
START_S = 30
"""Bound on the scheduler's start-up (to its first tick), in seconds."""
SCHEDULE = "universe-tick"


def _ticks(conn: psycopg.Connection, prefix: str, first: int) -> list[int]:
    """The ticks (epoch seconds) whose ``universe-tick`` task was submitted, oldest first."""
    ids = [r[0] for r in conn.execute("SELECT id FROM task_runs WHERE type = 'run_agent'")]
    return tick_seconds(prefix, SCHEDULE, ids, first, int(time.time()) + 1)


def _next_tick(conn: psycopg.Connection, prefix: str, first: int, after: int, *, timeout: float) -> int:
    """Wait for a tick newer than ``after`` to be submitted; returns the newest."""
    return wait.until(lambda: (got := _ticks(conn, prefix, first)) and got[-1] > after and got[-1],
                      timeout=timeout, interval=0.02, what=f"a tick after {after}")


def _behind(conn: psycopg.Connection, last_bar: datetime) -> list[str]:
    """The symbols whose bang progress is not their newest price, or whose newest price is older than
    the last tick's bar, per shard and (bang progress, newest price)."""
    rows = conn.execute(
        "SELECT s.shard, g.last_ts, p.ts, count(*) FROM symbols s"
        " LEFT JOIN progress g ON g.agent = 'bang' AND g.symbol = s.symbol"
        " LEFT JOIN LATERAL (SELECT ts FROM prices WHERE symbol = s.symbol ORDER BY ts DESC LIMIT 1) p ON true"
        " WHERE p.ts IS NULL OR p.ts < %s OR g.last_ts IS DISTINCT FROM p.ts"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", (last_bar,)).fetchall()
    return [f"shard {shard}: {n} symbols with bang progress {_hms(bang)}, newest price {_hms(price)}"
            for shard, bang, price, n in rows]


def _past(conn: psycopg.Connection, last_bar: datetime) -> int:
    """Symbols whose bang progress is past the last tick's bar (a price job read a later clock)."""
    return int(conn.execute("SELECT count(*) FROM progress WHERE agent = 'bang' AND last_ts > %s",
                            (last_bar,)).fetchone()[0])  # type: ignore[index]


def _hms(at: datetime | None) -> str:
    return "none" if at is None else f"{at:%H:%M:%S}"


def _unfinished(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT type, state, id, error FROM task_runs WHERE state <> 'finished'"
                        " ORDER BY created_at").fetchall()
    return [f"{kind} {task_id} {state}" + (f" ({error.splitlines()[0]})" if error else "")
            for kind, state, task_id, error in rows]


def _failed_jobs(redis: Redis) -> list[str]:
    out = []
    for name in keys.ALL_QUEUES:
        for job_id in FailedJobRegistry(name, connection=redis, serializer=JSONSerializer).get_job_ids():
            job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
            error = (job.exc_info or "").strip().splitlines()
            out.append(f"{name}: {job.func_name} {job_id} ({error[-1] if error else 'no traceback'})")
    return out


def _queued(redis: Redis) -> str:
    depths = {name: tasks.queue(redis, name).count for name in keys.ALL_QUEUES}
    return ", ".join(f"{name} {n}" for name, n in depths.items() if n) or "none"


def _report(conn: psycopg.Connection, redis: Redis, last_bar: datetime) -> str:
    behind, unfinished, failed = _behind(conn, last_bar), _unfinished(conn), _failed_jobs(redis)
    return "; ".join([
        f"every symbol's bang progress at its newest price, the last tick's bar {last_bar:%H:%M:%S} or later: "
        + (", ".join(behind) if behind else "all there"),
        f"every task finished: {len(unfinished)} not: " + ", ".join(unfinished[:20])
        + (f" (+{len(unfinished) - 20} more)" if len(unfinished) > 20 else ""),
        f"no failed job: {len(failed)}: " + ", ".join(failed[:10]),
        f"jobs still queued: {_queued(redis)}",
    ])


def test_2000_symbols_ticking_20s_reach_the_last_bar_and_finish_every_task_within_15s(stack):
    env = {**stack.env, "PRICE_INTERVAL_S": str(INTERVAL_S)}
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=f"L{i:05d}") for i in range(SYMBOLS)])
        conn.commit()
    notes: list[str] = []
    with Workers(env, stack.tmp / "workers", n=2) as workers, \
            psycopg.connect(stack.database_url, autocommit=True) as conn:
        workers.wait_registered(stack.redis)
        began = int(time.time())
        scheduler = procs.agent_scheduler(env, stack.tmp / "scheduler.log", name="live-test")
        try:
            deadline = time.monotonic() + START_S + TICK_S
            newest = first = 0
            while not first or newest < first + TICK_S:  # a note after each tick; the stop just after one
                newest = _next_tick(conn, stack.prefix, began, newest, timeout=deadline - time.monotonic())
                first = first or newest
                notes.append(tasks.submit(stack.redis, conn, stack.keys, type="note",
                                          params={"description": f"live test note {newest}"}).id)
        finally:
            code = procs.stop(scheduler)
        assert code == RET_OK, f"agent-scheduler exited with {code}: see {stack.tmp / 'scheduler.log'}"
        ticks = _ticks(conn, stack.prefix, began)
        last = ticks[-1]
        last_bar = datetime.fromtimestamp(latest_bar(last, INTERVAL_S) / 1e6, UTC)
        wait.until(lambda: not _behind(conn, last_bar) and not _unfinished(conn),
                   timeout=last + CATCH_UP_S - time.time(), interval=0.2,
                   what=lambda: f"{CATCH_UP_S} s after the last tick: {_report(conn, stack.redis, last_bar)}")
        settled_s = time.time() - last
        assert not _failed_jobs(stack.redis), _report(conn, stack.redis, last_bar)
        assert workers.alive(), f"a worker died: see {stack.tmp / 'workers'}"
        finished = {r[0] for r in conn.execute("SELECT id FROM task_runs WHERE state = 'finished'")}
        assert set(notes) <= finished, f"notes with no row: {set(notes) - finished}"
        past = _past(conn, last_bar)
    print(f"{len(ticks)} ticks ({ticks[0]}..{last}), {len(notes)} notes; settled {settled_s:.1f}s after the last tick;"
          f" {past} of {SYMBOLS} symbols past the last tick's bar")
