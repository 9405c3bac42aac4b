from __future__ import annotations

import numpy as np

from agentsys import tasks
from tests.support.pipeline import drain, rows, snapshot, submit_rows


def test_replay_runs_through_all_three_agents_and_finishes(stack):
    rng = np.random.default_rng(3)
    series = {f"S{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 150))) for i in range(3)}
    run = submit_rows(stack, rows(series))
    drain(stack)
    with stack.db() as conn:
        done = tasks.get(conn, run.id)
        n_ind = conn.execute("SELECT count(*) FROM indicators").fetchone()[0]
        n_bang = conn.execute("SELECT count(*) FROM bang_events").fetchone()[0]
    assert done.state == "finished", done
    assert done.progress == 1.0
    assert n_ind == 450
    assert done.result == {"symbols": 3, "ticks": 450, "bangs": n_bang}
    assert n_bang > 0
    snap = snapshot(stack.database_url)
    assert len(snap["progress"]) == 9


def test_two_workers_finish_a_task_spread_over_many_shards(stack):
    """Bang jobs of different shards finish one task concurrently: exactly one marks it finished."""
    from agentsys import symbols
    from agentsys.symbols import SymbolSpec
    from tests.support import procs

    rng = np.random.default_rng(9)
    series = {f"M{i:02d}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 120))) for i in range(16)}
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="csv") for s in series], shard_size=2)
    pubsub = stack.redis.pubsub()
    pubsub.subscribe(stack.keys.channel_tasks)
    workers = [procs.agent_worker(stack.env, stack.tmp / f"w{i}.log", name=f"pair-{i}") for i in range(2)]
    try:
        run = submit_rows(stack, rows(series))
        with stack.db() as conn:
            done = tasks.wait(conn, run.id, timeout=90)
            assert conn.execute("SELECT count(DISTINCT shard) FROM symbols").fetchone()[0] == 8
        assert done.state == "finished" and done.result["ticks"] == 16 * 120
        import json

        finished = []
        while (m := pubsub.get_message(timeout=0.2)) is not None:
            if m["type"] == "message" and json.loads(m["data"])["state"] == "finished":
                finished.append(m)
        assert len(finished) == 1
        logs = "".join((stack.tmp / f"w{i}.log").read_text() for i in range(2))
        assert "pair-0" in logs and "pair-1" in logs
    finally:
        pubsub.close()
        for w in workers:
            procs.stop(w)
