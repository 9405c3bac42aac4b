"""At-least-once delivery changes nothing: every job twice, in shuffled order, equals one clean run."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import psycopg

from agentsys import keys, symbols, tasks
from agentsys.models import TaskState
from agentsys.symbols import SymbolSpec
from postgres_service import cluster
from tests.support import wait
from tests.support.pipeline import drain, drain_shuffled_twice, rows, snapshot, submit_rows
from tests.support.servers import with_database
from worker.agents.base import LOCK_CLASS
from worker.jobs import ingest


def _workload(stack) -> None:
    """Two replays on disjoint symbols over six shards: many independent jobs.

    (Chunks of one symbol's feed are not independent: a later chunk ingested first makes
    the earlier one late data, which append-only refuses by design.)
    """
    rng = np.random.default_rng(5)
    series = {f"I{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 240))) for i in range(12)}
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="csv") for s in series], shard_size=2)
    names = sorted(series)
    submit_rows(stack, rows({s: series[s] for s in names[:5]}))
    submit_rows(stack, rows({s: series[s] for s in names[5:]}, start=30))


def test_every_job_twice_in_shuffled_order_equals_a_clean_run(stack, servers, monkeypatch):
    _workload(stack)
    ran = drain_shuffled_twice(stack, seed=7)
    assert ran >= 2 * (2 + 6 + 6)  # ingest, then indicator and bang per shard, each twice
    messy = snapshot(stack.database_url)

    clean_db = f"c_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, clean_db, template=servers.template)
    try:
        stack.redis.flushdb()
        stack.database_url = with_database(servers.pg_url, clean_db)
        monkeypatch.setenv("DATABASE_URL", stack.database_url)
        from worker.settings import get_settings

        get_settings.cache_clear()
        _workload(stack)
        drain(stack)
        clean = snapshot(stack.database_url)
    finally:
        cluster.drop_database(servers.pg_url, clean_db)
    assert clean["bang_events"], "the workload must produce bangs"
    for table in clean:
        assert messy[table] == clean[table], table
    assert [t[1] for t in clean["tasks"]] == ["finished"] * 2


def test_a_second_delivery_running_beside_the_first_ingest_waits_and_repeats(stack):
    """Two copies of one ingest at once: the later waits for the earlier's commit, then only repeats.

    Without that, the later could read "no targets yet" before the earlier commits and an
    emptied stage after, and finish the task with nothing in it while its agents still run.
    """
    series = {f"D{i}": 100 + np.arange(60, dtype=np.float64) for i in range(4)}
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="csv") for s in series], shard_size=4)
    task = submit_rows(stack, rows(series))
    stack.redis.delete(*(f"rq:queue:{q}" for q in keys.ALL_QUEUES))  # the copies below are the only deliveries
    outcomes: dict[str, dict] = {}

    def deliver(name: str) -> None:
        outcomes[name] = ingest.run(task.id)

    with psycopg.connect(stack.database_url, autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s, 0)", (LOCK_CLASS["price"],))  # the first copy stops mid-ingest

        def waiting() -> int:
            return blocker.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                   " AND wait_event_type = 'Lock'").fetchone()[0]

        first = threading.Thread(target=deliver, args=("first",))
        first.start()
        wait.until(lambda: waiting() == 1, timeout=20, what="the first copy to hold the task and wait")
        second = threading.Thread(target=deliver, args=("second",))
        second.start()
        wait.until(lambda: waiting() == 2, timeout=20, what="the second copy to wait")
        blocker.execute("SELECT pg_advisory_unlock(%s, 0)", (LOCK_CLASS["price"],))
        for thread in (first, second):
            thread.join(timeout=30)
            assert not thread.is_alive()
    assert outcomes["first"]["inserted"] == 4 * 60
    assert outcomes["second"].get("repeat") is True, outcomes["second"]
    with stack.db() as conn:
        assert tasks.get(conn, task.id).state == TaskState.started  # the agents have not run yet
    drain(stack)
    with stack.db() as conn:
        done = tasks.get(conn, task.id)
        bangs = conn.execute("SELECT count(*) FROM bang_events").fetchone()[0]
    assert done.state == TaskState.finished
    assert done.result == {"symbols": 4, "ticks": 4 * 60, "bangs": bangs}
