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
from typing import Any

import psycopg

from agentsys import defaults, triggers
from agentsys.logging import get_logger
from worker.agents import shard as shards
from worker.agents.base import lock_shard, shard_job
from worker.agents.publishing import invalidate, publish_prices
from worker.agents.store import store_prices
from worker.context import JobContext
from worker.sources.fetch import LIVE_SOURCES, due_bars, fetch, latest_bar

AGENT = "price"
log = get_logger("worker.price")


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
    limit = shards.per_symbol_limit(ctx, len(want_s))
    more = any(len(bars) > limit for bars in want_ts)  # the oldest bars now, the rest in a run of its own
    if more:
        want_ts = [bars[:limit] for bars in want_ts]
    got = fetch(ctx, want_s, want_ts, interval_s=interval)
    skipped = {"skipped": len(got.skipped)} if got.skipped else {}  # each one logged by fetch
    if not len(got.index):
        conn.rollback()
        return {"symbols": len(state.symbols), "ticks": 0, **skipped}
    stored = store_prices(conn, got.names, got.index, got.ts, got.price, held=(shard,))
    conn.commit()
    committed_at = time.time()
    rest = shards.continue_if(ctx, AGENT, shard, more)
    triggers.trigger_downstream(ctx.redis, ctx.keys, AGENT, stored.shards)
    invalidate(ctx, stored.symbols)
    publish_prices(ctx, shard, got.names, got.index, got.ts, got.price, committed_at=committed_at)
    return {"symbols": len(state.symbols), "ticks": int(stored.inserted), **skipped, **rest}
