"""The price agent: bring a shard's live symbols (synthetic, http) up to the latest bar.

Level-triggered like the others: it fetches every bar after a symbol's newest stored
price up to now (at most MAX_CATCHUP_BARS; a new symbol starts with that much history,
so its EMAs are defined at once), so missed ticks heal on the next run.

A symbol caught up downstream has its new bars carried through the EMAs and the state
machine in this same job (``worker.agents.live``); the others' are left to the
indicator and bang jobs it triggers.

A symbol whose source fails (breaker open, API down, unknown to the API) is skipped
for this run, with a warning (and counted in the job's ``skipped``); the shard's other
symbols are stored. Nothing is lost: its watermark has not moved, so the next run
asks for the same bars again.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from agentsys import defaults, triggers
from agentsys.logging import get_logger
from worker.agents import live, steps
from worker.agents import shard as shards
from worker.agents.base import lock_shard, shard_job
from worker.agents.publishing import invalidate, publish_prices
from worker.agents.store import append_new
from worker.context import JobContext
from worker.sources.fetch import LIVE_SOURCES, bar_arrays, due_many, fetch, latest_bar

AGENT = "price"
log = get_logger("worker.price")


@shard_job(AGENT)
def run(ctx: JobContext, conn: psycopg.Connection, shard: int) -> dict[str, Any]:
    lock_shard(conn, AGENT, shard)
    fusing = live.may_fuse(ctx, conn, shard)
    loaded = shards.load_many(ctx, conn, (AGENT, *live.FUSED) if fusing else (AGENT,), shard)
    state = loaded.states[AGENT]
    interval = ctx.settings.price_interval_s
    now_us = latest_bar(time.time(), interval)
    live_source = np.array([src in LIVE_SOURCES for src in loaded.sources], dtype=bool)
    marks = [p[0] for p in state.progress]
    last_us = np.array([-1 if m is None else m for m in marks], dtype=np.int64)
    known = np.array([m is not None for m in marks], dtype=bool)
    first, count = due_many(last_us, known, now_us, interval, defaults.MAX_CATCHUP_BARS)
    want = np.flatnonzero(live_source & (count > 0))
    if not len(want):
        conn.rollback()
        return {"symbols": len(state.symbols), "ticks": 0}
    limit = shards.per_symbol_limit(ctx, len(want))
    more = bool((count[want] > limit).any())  # the oldest bars now, the rest in a run of its own
    want_ts = bar_arrays(first[want], np.minimum(count[want], limit), interval)
    got = fetch(ctx, [(state.symbols[i], loaded.sources[i]) for i in want.tolist()], want_ts, interval_s=interval)
    skipped = {"skipped": len(got.skipped)} if got.skipped else {}  # each one logged by fetch
    if not len(got.index):
        conn.rollback()
        return {"symbols": len(state.symbols), "ticks": 0, **skipped}
    index = want[got.index]  # rows by shard index, then ts
    order = np.lexsort((got.ts, index))
    index, ts, price = index[order], got.ts[order], got.price[order]
    inserted = append_new(conn, state.symbols, index, ts, price, known=known)
    got_rows = np.bincount(index, minlength=len(state.symbols)) > 0
    fuse = live.caught_up(loaded) & got_rows if fusing else np.zeros(len(state.symbols), dtype=bool)
    fused = live.advance(conn, loaded, fuse, index, ts, price) if fuse.any() else None
    conn.commit()
    committed_at = time.time()
    result = {"symbols": len(state.symbols), "ticks": int(inserted), **skipped,
              **shards.continue_if(ctx, AGENT, shard, more)}
    alone = got_rows & ~fuse
    if fused is not None:  # bangs first: the gateway relays them before it reads the (larger) updates
        steps.announce_bangs(ctx, shard, fused.bang, committed_at=committed_at)
    invalidate(ctx, [s for s, g in zip(state.symbols, got_rows.tolist(), strict=True) if g])
    if alone.any():
        triggers.trigger_downstream(ctx.redis, ctx.keys, AGENT, [shard])
        rows = alone[index]
        publish_prices(ctx, shard, state.symbols, index[rows], ts[rows], price[rows], committed_at=committed_at)
    if fused is None:
        return result
    steps.publish_update(ctx, shard, fused.indicator, committed_at=committed_at)
    return {**result, "fused": len(fused.bang.symbols), "fused_ticks": int(len(fused.indicator.index)),
            "bangs": len(fused.bang.events), "tasks_updated": len(fused.bang.tasks),
            "committed_at": round(committed_at, 6), "covered_us": fused.covered_us}
