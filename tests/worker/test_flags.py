"""A disabled agent does nothing and says so; re-enabled, it catches up with nobody enqueuing anything."""

from __future__ import annotations

import numpy as np

from agentsys import flags, tasks
from tests.support import procs, wait
from tests.support.pipeline import rows, submit_rows


def test_disable_feed_enable_catch_up(stack):
    flags.set_enabled(stack.redis, stack.keys, "indicator", False)
    rng = np.random.default_rng(2)
    run = submit_rows(stack, rows({"F0": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 120)))}))
    log = stack.tmp / "worker.log"
    worker = procs.agent_worker(stack.env, log, name="flags-1")
    try:
        wait.until(lambda: "agent disabled; nothing done" in log.read_text(), timeout=30,
                   what="the disabled indicator job to say so")
        with stack.db() as conn:
            assert conn.execute("SELECT count(*) FROM prices").fetchone()[0] == 120
            assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 0
            assert tasks.get(conn, run.id).state == "started"
        flags.set_enabled(stack.redis, stack.keys, "indicator", True)  # and nothing else
        with stack.db() as conn:
            done = tasks.wait(conn, run.id, timeout=60)
            assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 120
        assert done.state == "finished"
        assert "sweep triggered lagging shards" in log.read_text()
    finally:
        assert procs.stop(worker) == 0
