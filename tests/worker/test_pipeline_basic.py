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
