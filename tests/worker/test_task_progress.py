"""A composite task's ``progress`` advances as its shards' bang jobs commit, never backwards."""

from __future__ import annotations

import numpy as np

from agentsys import symbols, tasks
from agentsys.symbols import SymbolSpec
from tests.support.pipeline import ALL_QUEUES, drain, rows, submit_rows


def _queued(stack) -> int:
    return sum(tasks.queue(stack.redis, name).count for name in ALL_QUEUES)


def test_progress_moves_between_zero_and_one_as_shards_commit(stack):
    rng = np.random.default_rng(21)
    series = {f"P{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 80))) for i in range(4)}
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="csv") for s in series], shard_size=1)
        conn.commit()
        assert conn.execute("SELECT count(DISTINCT shard) FROM symbols").fetchone()[0] == 4
    run = submit_rows(stack, rows(series))
    seen: list[tuple[str, float]] = []
    for _ in range(100):  # one job at a time: 1 ingest, 4 indicator and 4 bang jobs
        if not _queued(stack):
            break
        drain(stack, max_jobs=1)
        with stack.db() as conn:
            now = tasks.get(conn, run.id)
        seen.append((now.state.value, now.progress))
    else:
        raise AssertionError(f"jobs kept coming: {seen}")
    progress = [p for _, p in seen]
    assert progress == sorted(progress), seen  # never decreases
    assert any(0 < p < 1 for p in progress), seen  # shards commit one by one
    assert sorted({p for p in progress if 0 < p < 1}) == [0.25, 0.5, 0.75], seen  # one symbol-tick share per shard
    assert seen[-1] == ("finished", 1.0), seen
    assert all(state == "started" for state, p in seen if p < 1), seen  # finished only with the last shard
    with stack.db() as conn:
        done = tasks.get(conn, run.id)
    assert done.result == {"symbols": 4, "ticks": 320, "bangs": done.result["bangs"]}
