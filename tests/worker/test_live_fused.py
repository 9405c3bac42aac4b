"""A live tick of a caught-up shard runs price, EMAs and bangs in the price job: the same rows
as the three agents' jobs, and the separate way whenever fusing is not safe."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import talib

from agentsys import symbols, tasks
from agentsys.symbols import SymbolSpec
from tests.support.pipeline import drain
from tests.support.wait import until

NAMES = [f"LF{i}" for i in range(12)]
COMPUTED = {
    "indicators": "SELECT symbol, ts, price, ema_fast, ema_mid, ema_slow, state FROM indicators ORDER BY symbol, ts",
    "bang_events": "SELECT symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow FROM bang_events"
                   " ORDER BY symbol, ts",
    "progress": "SELECT agent, symbol, last_ts, n, seed_sum, ema_fast, ema_mid, ema_slow, state FROM progress"
                " WHERE agent <> 'price' ORDER BY agent, symbol",
}


@pytest.fixture
def one_second_bars(settings_env):
    settings_env(PRICE_INTERVAL_S="1")
    return 1


def tick(stack, conn) -> None:
    tasks.submit(stack.redis, conn, stack.keys, type="run_agent", params={"agent": "price"})
    conn.commit()
    drain(stack)


def finished(stack, queue: str) -> int:
    return tasks.queue(stack.redis, queue).finished_job_registry.count


def computed(conn) -> dict[str, list[tuple]]:
    return {name: conn.execute(q).fetchall() for name, q in COMPUTED.items()}


def recompute_separately(stack, conn) -> None:
    """Forget what the fused ticks computed and let the indicator and bang jobs redo it from the prices."""
    conn.execute("DELETE FROM indicators; DELETE FROM bang_events; DELETE FROM progress WHERE agent <> 'price'")
    conn.commit()
    tasks.submit(stack.redis, conn, stack.keys, type="recover", params={})
    conn.commit()
    drain(stack)


def test_fused_ticks_write_what_the_three_agents_write_and_equal_ta_lib(stack, one_second_bars):
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in NAMES])
        conn.commit()
        tick(stack, conn)  # each symbol's 720-bar history, fused (nothing downstream to catch up)
        last = conn.execute("SELECT max(last_ts) FROM progress WHERE agent = 'price'").fetchone()[0]
        until(lambda: tick(stack, conn) or conn.execute(  # a second bar or more: live ticks
            "SELECT min(last_ts) FROM progress WHERE agent = 'bang'").fetchone()[0] > last, timeout=10,
            what="a live tick past the history")
        assert finished(stack, "indicator") == 0 and finished(stack, "bang") == 0  # all of it in the price jobs
        fused = computed(conn)
        recompute_separately(stack, conn)
        assert finished(stack, "indicator") > 0 and finished(stack, "bang") > 0
        separate = computed(conn)
        prices = {s: np.array([r[0] for r in conn.execute("SELECT price FROM prices WHERE symbol = %s ORDER BY ts",
                                                          (s,))]) for s in NAMES}
    assert fused == separate
    assert len(fused["bang_events"]) > 0  # the comparison covers bangs
    got = {}
    for symbol, ts, _, f, m, s, _ in fused["indicators"]:
        got.setdefault(symbol, []).append((f, m, s))
    for symbol, series in prices.items():
        values = np.array(got[symbol], dtype=np.float64)
        assert len(values) == len(series) >= 721
        for k, period in enumerate((9, 21, 55)):
            assert np.allclose(values[:, k], talib.EMA(series, timeperiod=period), rtol=1e-9, equal_nan=True)


def test_a_busy_downstream_lock_or_a_lagging_symbol_goes_the_separate_way(stack, one_second_bars):
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in NAMES])
        conn.commit()
        with psycopg.connect(stack.database_url, autocommit=False) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(2, 0)")  # the indicator lock of shard 0, as a catch-up run
            tasks.submit(stack.redis, conn, stack.keys, type="run_agent", params={"agent": "price"})
            conn.commit()
            drain(stack, max_jobs=2)  # the tick task, then the price job: it cannot fuse and triggers downstream
            assert finished(stack, "price") == 1
            assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 0
        drain(stack)  # the lock is free: the indicator and bang jobs catch up
        assert finished(stack, "indicator") == 1 and finished(stack, "bang") == 1
        behind = conn.execute(
            "SELECT count(*) FROM progress p JOIN progress b ON b.agent = 'bang' AND b.symbol = p.symbol"
            " WHERE p.agent = 'price' AND b.last_ts = p.last_ts").fetchone()[0]
        assert behind == len(NAMES)
        # one symbol's bang progress is behind (as after a crash between jobs): it waits for the bang job
        conn.execute("UPDATE progress SET last_ts = last_ts - interval '3 seconds' WHERE agent = 'bang'"
                     " AND symbol = %s", (NAMES[0],))
        conn.commit()
        top = conn.execute("SELECT max(last_ts) FROM progress WHERE agent = 'price'").fetchone()[0]
        until(lambda: tick(stack, conn) or conn.execute(
            "SELECT min(last_ts) FROM progress WHERE agent = 'price'").fetchone()[0] > top, timeout=10,
            what="a new bar")
        lagging = conn.execute("SELECT count(*) FROM indicators i JOIN progress p ON p.symbol = i.symbol"
                               " AND p.agent = 'price' AND i.ts = p.last_ts").fetchone()[0]
        assert lagging == len(NAMES)  # every symbol's newest price has its EMAs, fused or not
        assert finished(stack, "bang") >= 2  # the lagging symbol's bang job ran
        rows = conn.execute("SELECT count(DISTINCT (symbol, ts)), count(*) FROM indicators").fetchone()
        assert rows[0] == rows[1]
        done = conn.execute("SELECT count(*) FROM progress p JOIN progress b ON b.agent = 'bang'"
                            " AND b.symbol = p.symbol WHERE p.agent = 'price' AND b.last_ts = p.last_ts").fetchone()[0]
        assert done == len(NAMES)


def test_the_fused_agents_are_the_registrys_downstream_agents_in_order():
    from agentsys import agents
    from worker.agents import live

    assert live.FUSED == agents.NAMES[1:]
