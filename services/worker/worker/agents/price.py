"""The price agent: bring a shard's live symbols (synthetic, http) up to the latest bar.

Level-triggered like the others: it fetches every bar after a symbol's newest stored
price up to now (at most MAX_CATCHUP_BARS; a new symbol starts with that much history,
so its EMAs are defined at once), so missed ticks heal on the next run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from agentsys import defaults, triggers
from agentsys.errors import AgentSysError
from agentsys.logging import get_logger
from worker.agents import shard as shards
from worker.agents.base import lock_shard, shard_job
from worker.agents.publishing import invalidate, publish_prices
from worker.agents.store import store_prices
from worker.context import JobContext

AGENT = "price"
LIVE_SOURCES = ("synthetic", "http")
log = get_logger("worker.price")


def latest_bar(now_s: float, interval_s: int) -> int:
    """Open time (epoch microseconds) of the newest completed bar."""
    return (int(now_s) // interval_s) * interval_s * 1_000_000


def due_bars(last_us: int | None, now_us: int, interval_s: int, cap: int) -> np.ndarray:
    step = interval_s * 1_000_000
    first = now_us - (cap - 1) * step if last_us is None else max(last_us + step, now_us - (cap - 1) * step)
    if first > now_us:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, now_us + 1, step, dtype=np.int64)


@shard_job(AGENT)
def run(ctx: JobContext, conn: psycopg.Connection, shard: int) -> dict[str, Any]:
    lock_shard(conn, AGENT, shard)
    state = shards.load(ctx, conn, AGENT, shard)
    sources = dict(conn.execute("SELECT symbol, source FROM symbols WHERE shard = %s", (shard,)).fetchall())
    interval = ctx.settings.price_interval_s
    now_us = latest_bar(time.time(), interval)
    want_s, want_ts = [], []
    for symbol, progress in zip(state.symbols, state.progress, strict=True):
        if sources.get(symbol) not in LIVE_SOURCES:
            continue
        last = progress[0]
        last_us = None if last is None else int(last.timestamp() * 1_000_000)
        bars = due_bars(last_us, now_us, interval, defaults.MAX_CATCHUP_BARS)
        if len(bars):
            want_s.append((symbol, sources[symbol]))
            want_ts.append(bars)
    if not want_s:
        conn.rollback()
        return {"symbols": len(state.symbols), "ticks": 0}
    names, index, ts, price = fetch(ctx, want_s, want_ts)
    if not len(index):
        conn.rollback()
        return {"symbols": len(state.symbols), "ticks": 0}
    stored = store_prices(conn, names, index, ts, price)
    conn.commit()
    triggers.trigger_many(ctx.redis, ctx.keys, "indicator", stored.shards)
    invalidate(ctx, stored.symbols)
    publish_prices(ctx, shard, names, index, ts, price)
    return {"symbols": len(state.symbols), "ticks": int(stored.inserted)}


def fetch(ctx: JobContext, wanted: list[tuple[str, str]], bars: list[np.ndarray]
          ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Prices of each wanted (symbol, source) at its due bars: (names, index into names, ts, price)."""
    from agentsys.sources import synthetic

    names = [s for s, _ in wanted]
    out_i, out_t, out_p = [], [], []
    # symbols sharing the same bars (the usual case) are priced in one vectorised call
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, src) in enumerate(wanted):
        if src == "synthetic":
            groups.setdefault((int(bars[i][0]), len(bars[i])), []).append(i)
    for members in groups.values():
        ts = bars[members[0]]
        prices = synthetic.prices([names[i] for i in members], ts, seed=ctx.settings.synthetic_seed)
        out_i.append(np.repeat(np.array(members, dtype=np.int64), len(ts)))
        out_t.append(np.tile(ts, len(members)))
        out_p.append(prices.reshape(-1))
    for i, (symbol, src) in enumerate(wanted):
        if src != "http":
            continue
        try:
            ts, closes = fetch_http(ctx, symbol, int(bars[i][0]), int(bars[i][-1]))
        except AgentSysError as error:
            log.warning("http source unavailable", symbol=symbol, error=str(error))
            continue
        out_i.append(np.full(len(ts), i, dtype=np.int64))
        out_t.append(np.asarray(ts, dtype=np.int64))
        out_p.append(np.asarray(closes, dtype=np.float64))
    if not out_i:
        return names, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return names, np.concatenate(out_i), np.concatenate(out_t), np.concatenate(out_p)


def fetch_http(ctx: JobContext, symbol: str, start_us: int, end_us: int) -> tuple[np.ndarray, np.ndarray]:
    from worker.sources import binance

    return binance.fetch_closes(ctx.redis, ctx.keys, symbol, start_us, end_us,
                                interval_s=ctx.settings.price_interval_s)
