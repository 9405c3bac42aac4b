"""A shard job takes at most MAX_JOB_TICKS symbol-ticks, then re-triggers itself: same results, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from agentsys import symbols, tasks
from agentsys.symbols import SymbolSpec
from tests.support.pipeline import drain, rows, submit_rows


@pytest.fixture
def small_jobs(settings_env):
    settings_env(MAX_JOB_TICKS="100")
    return 100


def finished_jobs(stack, queue: str) -> int:
    return tasks.queue(stack.redis, queue).finished_job_registry.count


def test_a_replay_larger_than_one_job_takes_several_runs_and_equals_ta_lib(stack, small_jobs):
    rng = np.random.default_rng(11)
    series = {f"K{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300))) for i in range(4)}
    run = submit_rows(stack, rows(series))
    drain(stack)
    with stack.db() as conn:
        done = tasks.get(conn, run.id)
        got = {s: np.array(conn.execute("SELECT ema_fast, ema_mid, ema_slow FROM indicators WHERE symbol = %s"
                                        " ORDER BY ts", (s,)).fetchall(), dtype=np.float64) for s in series}
    assert done.state == "finished" and done.result["ticks"] == 1200
    # 4 symbols x 300 ticks at 25 a symbol per job: each agent ran at least 12 times
    assert finished_jobs(stack, "indicator") >= 12 and finished_jobs(stack, "bang") >= 12
    for symbol, prices in series.items():
        for k, period in enumerate((9, 21, 55)):
            want = talib.EMA(prices, timeperiod=period)
            assert np.array_equal(np.isnan(want), np.isnan(got[symbol][:, k]))
            assert np.allclose(got[symbol][:, k], want, rtol=1e-9, equal_nan=True)


def test_a_new_live_symbols_history_comes_in_bounded_runs(stack, small_jobs):
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=f"H{i}", source="synthetic") for i in range(5)])
        conn.commit()
        stack_keys = stack.keys
        tasks.submit(stack.redis, conn, stack_keys, type="run_agent", params={"agent": "price"})
    drain(stack)
    with stack.db() as conn:
        counts = dict(conn.execute("SELECT symbol, count(*) FROM prices GROUP BY symbol").fetchall())
        behind = conn.execute(
            "SELECT count(*) FROM progress p JOIN progress b ON b.agent = 'bang' AND b.symbol = p.symbol"
            " WHERE p.agent = 'price' AND b.last_ts < p.last_ts").fetchone()[0]
    # 720 bars of history at 20 a symbol per job: the price agent ran at least 36 times, and stopped
    assert len(counts) == 5 and min(counts.values()) >= 720
    assert finished_jobs(stack, "price") >= 36
    assert behind == 0
