"""The price agent: bring a shard's live symbols (synthetic, http) up to the latest bar.

Level-triggered like the others: it fetches every bar after a symbol's newest stored
price up to now (at most MAX_CATCHUP_BARS; a new symbol starts with that much history,
so its EMAs are defined at once), so missed ticks heal on the next run.

A symbol whose source fails (breaker open, API down, unknown to the API) is skipped
for this run, with a warning (and counted in the job's ``skipped``); the shard's other
symbols are stored. Nothing is lost: its watermark has not moved, so the next run
asks for the same bars again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class Fetched:
    """Prices from the sources: row ``r`` is symbol ``names[index[r]]`` at ``ts[r]``.

    ``skipped`` holds the symbols whose source failed, as ``{"symbol", "reason"}``, so
    callers can say so (a task's result) instead of dropping them unseen.
    """

    names: list[str]
    index: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    skipped: list[dict[str, str]] = field(default_factory=list)


@shard_job(AGENT)
def run(ctx: JobContext, conn: psycopg.Connection, shard: int) -> dict[str, Any]:
    lock_shard(conn, AGENT, shard)
    state = shards.load(ctx, conn, AGENT, shard)
    sources: dict[str, str] = dict(conn.execute("SELECT symbol, source FROM symbols WHERE shard = %s",
                                                (shard,)).fetchall())
    interval = ctx.settings.price_interval_s
    now_us = latest_bar(time.time(), interval)
    want_s, want_ts = [], []
    for symbol, progress in zip(state.symbols, state.progress, strict=True):
        if sources.get(symbol, "") not in LIVE_SOURCES:
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
    got = fetch(ctx, want_s, want_ts, interval_s=interval)
    skipped = {"skipped": len(got.skipped)} if got.skipped else {}  # each one logged by fetch
    if not len(got.index):
        conn.rollback()
        return {"symbols": len(state.symbols), "ticks": 0, **skipped}
    stored = store_prices(conn, got.names, got.index, got.ts, got.price)
    conn.commit()
    committed_at = time.time()
    triggers.trigger_many(ctx.redis, ctx.keys, "indicator", stored.shards)
    invalidate(ctx, stored.symbols)
    publish_prices(ctx, shard, got.names, got.index, got.ts, got.price, committed_at=committed_at)
    return {"symbols": len(state.symbols), "ticks": int(stored.inserted), **skipped}


def fetch(ctx: JobContext, wanted: list[tuple[str, str]], bars: list[np.ndarray], *, interval_s: int) -> Fetched:
    """Prices of each wanted (symbol, source) at its due bars, which are ``interval_s`` apart.

    The http source is asked for bars of ``interval_s`` (a backfill's own interval, not
    necessarily PRICE_INTERVAL_S). A symbol whose source raises is left out and listed
    in ``skipped`` with the error; the others are still returned.
    """
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
    skipped: list[dict[str, str]] = []
    for i, (symbol, src) in enumerate(wanted):
        if src != "http":
            continue
        try:
            ts, closes = fetch_http(ctx, symbol, int(bars[i][0]), int(bars[i][-1]), interval_s=interval_s)
        except AgentSysError as error:
            log.warning("http source failed; symbol skipped", symbol=symbol, error=str(error))
            skipped.append({"symbol": symbol, "reason": str(error)})
            continue
        out_i.append(np.full(len(ts), i, dtype=np.int64))
        out_t.append(np.asarray(ts, dtype=np.int64))
        out_p.append(np.asarray(closes, dtype=np.float64))
    if not out_i:
        return Fetched(names, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), skipped)
    return Fetched(names, np.concatenate(out_i), np.concatenate(out_t), np.concatenate(out_p), skipped)


def fetch_http(ctx: JobContext, symbol: str, start_us: int, end_us: int, *, interval_s: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Closes of ``symbol``'s ended ``interval_s`` bars in [start_us, end_us] from the http source."""
    from worker.sources import binance

    return binance.fetch_closes(ctx.redis, ctx.keys, symbol, start_us, end_us, interval_s=interval_s)
