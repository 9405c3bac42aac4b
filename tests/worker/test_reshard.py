"""Re-sharding a universe while it ticks, under real workers: nothing lost, doubled or miscomputed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import talib
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from agentsys import defaults, keys, symbols, tasks
from agentsys.sources import synthetic
from agentsys.symbols import SymbolSpec
from tests.support import wait
from tests.support.faults import Workers

SYMBOLS = 600
INTERVAL_S = 1
"""The workers' PRICE_INTERVAL_S: a bar a second, so the universe ticks within the test."""
TICK_S = 0.5
"""Seconds between two ``run_agent`` price tasks (the scheduler's universe-tick, twice a bar)."""
PERIODS = (defaults.EMA_FAST, defaults.EMA_MID, defaults.EMA_SLOW)
WORKER_ENV = {"PRICE_INTERVAL_S": str(INTERVAL_S), "WORKER_WITH_SCHEDULER": "true", "LOG_LEVEL": "WARNING"}


@contextlib.contextmanager
def ticking(stack) -> Iterator[list[str]]:
    """Submit a ``run_agent`` price task every TICK_S until the block ends; yields their ids so far."""
    ids: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with stack.db() as conn:
                while not stop.is_set():
                    ids.append(tasks.submit(stack.redis, conn, stack.keys, type="run_agent",
                                            params={"agent": "price"}).id)
                    stop.wait(TICK_S)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield ids
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors


def _state(conn: psycopg.Connection, task_id: str) -> str:
    return tasks.get(conn, task_id).state.value


def _reshard(stack, conn: psycopg.Connection, ticks: list[str], shard_size: int) -> dict:
    """Wait for a few more ticks, submit a re-shard and wait for it while the ticks go on."""
    seen = len(ticks)
    wait.until(lambda: len(ticks) >= seen + 4, timeout=10, what="four more ticks")
    run = tasks.submit(stack.redis, conn, stack.keys, type="reshard", params={"shard_size": shard_size})
    state = wait.until(lambda: (s := _state(conn, run.id)) in {"finished", "failed"} and s, timeout=30,
                       what=f"the re-shard to {shard_size}")
    done = tasks.get(conn, run.id)
    assert state == "finished", done.error
    return dict(done.result)


def _settled(stack, conn: psycopg.Connection) -> bool:
    """Every task ended, no price job queued, running or waiting to retry, and every symbol's bangs
    caught up with its newest price."""
    if conn.execute("SELECT count(*) FROM task_runs WHERE state NOT IN ('finished', 'failed')").fetchone()[0]:
        return False
    if any(True for _ in stack.redis.scan_iter(match=stack.keys.pending("price", "*"))):  # type: ignore[arg-type]
        return False
    price = tasks.queue(stack.redis, "price")
    if len(StartedJobRegistry(queue=price)) or len(ScheduledJobRegistry(queue=price)):
        return False
    behind = conn.execute(
        "SELECT count(*) FROM symbols s LEFT JOIN progress p ON p.agent = 'price' AND p.symbol = s.symbol"
        " LEFT JOIN progress b ON b.agent = 'bang' AND b.symbol = s.symbol"
        " WHERE p.last_ts IS NULL OR b.last_ts IS DISTINCT FROM p.last_ts").fetchone()[0]
    return behind == 0


def _series(conn: psycopg.Connection, query: str) -> dict[str, list[list]]:
    return {r[0]: list(r[1:]) for r in conn.execute(query)}  # type: ignore[arg-type]


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _reference_states(emas: np.ndarray) -> list[str | None]:
    """TA-Lib EMAs to states: BULL fast > mid > slow, BEAR the reverse, FLAT otherwise, None undefined."""
    out: list[str | None] = []
    for fast, mid, slow in emas:
        if np.isnan(slow) or np.isnan(mid) or np.isnan(fast):
            out.append(None)
        else:
            out.append("BULL" if fast > mid > slow else "BEAR" if fast < mid < slow else "FLAT")
    return out


def test_reshard_a_ticking_universe_twice_loses_nothing(stack):
    names = [f"U{i:03d}" for i in range(SYMBOLS)]
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in names], shard_size=100)
        conn.commit()
        conn.autocommit = True
        with Workers(stack.env, stack.tmp / "workers", 2, worker_env=WORKER_ENV) as workers:
            workers.wait_registered(stack.redis)
            with ticking(stack) as ticks:
                first = _reshard(stack, conn, ticks, 250)
                second = _reshard(stack, conn, ticks, 70)
                resharded_at = time.time()
                wait.until(lambda: conn.execute(
                    "SELECT count(*) FROM progress WHERE agent = 'price' AND last_ts > to_timestamp(%s)",
                    (resharded_at,)).fetchone()[0] == SYMBOLS, timeout=20,
                    what="every symbol to get a price after the last re-shard")
            wait.until(lambda: _settled(stack, conn), timeout=60, interval=0.2,
                       what="the ticks to end and every symbol's bangs to reach its last price")
            failed = {q: len(FailedJobRegistry(queue=tasks.queue(stack.redis, q))) for q in keys.ALL_QUEUES}
        assert first == {"shard_size": 250, "symbols": SYMBOLS, "shards_before": 6, "shards_after": 3,
                         "moved": first["moved"], "enqueued": first["enqueued"]} and first["moved"] > 0
        assert (second["shards_before"], second["shards_after"]) == (3, 9) and second["moved"] > 0
        assert failed == dict.fromkeys(keys.ALL_QUEUES, 0)
        states = dict(conn.execute("SELECT state, count(*) FROM task_runs GROUP BY state").fetchall())
        assert states == {"finished": len(ticks) + 2}

        # every symbol once, in the last re-shard's shards of 70
        rows = conn.execute("SELECT symbol, shard FROM symbols ORDER BY shard, symbol").fetchall()
        assert sorted(r[0] for r in rows) == names
        assert [r[1] for r in rows] == [i // 70 for i in range(SYMBOLS)]

        prices = _series(conn, "SELECT symbol, array_agg(extract(epoch FROM ts)::bigint ORDER BY ts),"
                               " array_agg(price ORDER BY ts) FROM prices GROUP BY symbol")
        indicators = _series(conn, "SELECT symbol, array_agg(price ORDER BY ts), array_agg(ema_fast ORDER BY ts),"
                                   " array_agg(ema_mid ORDER BY ts), array_agg(ema_slow ORDER BY ts),"
                                   " array_agg(state ORDER BY ts) FROM indicators GROUP BY symbol")
        bangs = _series(conn, "SELECT symbol, array_agg(extract(epoch FROM ts)::bigint ORDER BY ts),"
                              " array_agg(from_state ORDER BY ts), array_agg(to_state ORDER BY ts)"
                              " FROM bang_events GROUP BY symbol")
    assert sorted(prices) == names and sorted(indicators) == names
    total_bangs = 0
    for symbol in names:
        ts_s, price = np.array(prices[symbol][0], dtype=np.int64), np.array(prices[symbol][1])
        # contiguous: one price a bar, no gap, no repeat, each the synthetic source's
        assert len(ts_s) >= defaults.MAX_CATCHUP_BARS and (np.diff(ts_s) == INTERVAL_S).all(), symbol
        want = synthetic.prices([symbol], ts_s * 1_000_000, seed=defaults.SYNTHETIC_SEED)[0]
        assert np.array_equal(price, want), symbol
        ind_price, *emas, ind_state = indicators[symbol]
        assert np.array_equal(np.array(ind_price), price), symbol  # an indicator row per price
        reference = np.stack([talib.EMA(price, timeperiod=p) for p in PERIODS], axis=1)
        for k in range(3):
            got = _floats(emas[k])
            assert np.array_equal(np.isnan(got), np.isnan(reference[:, k])), (symbol, PERIODS[k])
            assert np.allclose(got, reference[:, k], rtol=1e-9, atol=0, equal_nan=True), (symbol, PERIODS[k])
        codes = _reference_states(reference)
        assert ind_state == codes, symbol
        want_bangs = [(int(ts_s[i]), codes[i - 1], codes[i]) for i in range(1, len(codes))
                      if codes[i - 1] is not None and codes[i] != codes[i - 1] and codes[i] in ("BULL", "BEAR")]
        got_bangs = list(zip(*bangs[symbol], strict=True)) if symbol in bangs else []
        assert got_bangs == want_bangs, symbol
        total_bangs += len(want_bangs)
    assert total_bangs > SYMBOLS  # the comparison compared something
