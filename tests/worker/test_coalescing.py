"""1,000 triggers while a job runs give at most two further runs, and nothing waits for the sweep."""

from __future__ import annotations

import numpy as np
import psycopg
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from agentsys import tasks, triggers
from tests.support import procs, wait
from tests.support.pipeline import QuietWorker, rows, submit_rows


def _ingest(stack) -> None:
    QuietWorker([tasks.queue(stack.redis, "price")], connection=stack.redis).work(burst=True)


def test_thousand_triggers_during_a_run(stack):
    rng = np.random.default_rng(4)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 200)))
    blocker = psycopg.connect(stack.database_url)
    blocker.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")  # the running job will wait on it
    worker = procs.agent_worker(stack.env, stack.tmp / "w.log", name="coalesce-1", queues="indicator",
                                MAINTENANCE_INTERVAL="3600")
    try:
        submit_rows(stack, rows({"C0": values[:100]}))
        _ingest(stack)
        started = StartedJobRegistry("indicator", connection=stack.redis)
        wait.until(lambda: started.count == 1, what="the indicator job to start")
        submit_rows(stack, rows({"C0": values[100:]}, start=100))
        _ingest(stack)  # its trigger enqueues one more run (the running job dropped the pending key)
        for _ in range(1000):
            triggers.trigger(stack.redis, stack.keys, "indicator", 0)
        assert tasks.queue(stack.redis, "indicator").count == 1
        blocker.rollback()
        finished = FinishedJobRegistry("indicator", connection=stack.redis)
        wait.until(lambda: finished.count >= 2 and started.count == 0
                   and tasks.queue(stack.redis, "indicator").count == 0, timeout=60, what="the runs to end")
        assert finished.count <= 3  # the running job plus at most two more
        with stack.db() as conn:
            last = conn.execute("SELECT last_ts FROM progress WHERE agent = 'indicator' AND symbol = 'C0'").fetchone()
            newest = conn.execute("SELECT max(ts) FROM prices WHERE symbol = 'C0'").fetchone()
            assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 200
        assert last == newest
    finally:
        blocker.close()
        assert procs.stop(worker) == 0
