"""The indicator agent: advance the three EMAs of a shard over every price it has not seen."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from agentsys import triggers
from worker.agents import bulk, steps
from worker.agents import shard as shards
from worker.agents.base import lock_shard, shard_job
from worker.agents.publishing import invalidate
from worker.context import JobContext

AGENT = "indicator"


@shard_job(AGENT)
def run(ctx: JobContext, conn: psycopg.Connection, shard: int) -> dict[str, Any]:
    lock_shard(conn, AGENT, shard)
    state = shards.load(ctx, conn, AGENT, shard)
    n = len(state.symbols)
    limit = shards.per_symbol_limit(ctx, n)
    got = bulk.copy_out_grouped(
        conn,
        """
        SELECT (s.rn - 1)::int4, array_agg(p.ts), array_agg(p.price)
        FROM unnest(%s::text[]) WITH ORDINALITY AS s(symbol, rn)
        LEFT JOIN progress g ON g.agent = 'indicator' AND g.symbol = s.symbol
        CROSS JOIN LATERAL (SELECT p.ts, p.price FROM prices p
                            WHERE p.symbol = s.symbol AND p.ts > COALESCE(g.last_ts, '-infinity')
                            ORDER BY p.ts LIMIT %s) p
        GROUP BY s.rn ORDER BY s.rn
        """,
        (state.symbols, limit),
        [("ts", "timestamptz"), ("price", "float8")],
        order_by="ts",
    )
    index = np.repeat(got.keys.astype(np.int64), got.counts)
    if not len(index):
        conn.rollback()
        return {"symbols": n, "ticks": 0}
    out = steps.advance_emas(conn, state, index, got.arrays["ts"], got.arrays["price"])
    conn.commit()
    committed_at = time.time()
    rest = shards.continue_if(ctx, AGENT, shard, int(got.counts.max()) >= limit)
    triggers.trigger_downstream(ctx.redis, ctx.keys, AGENT, [shard])
    invalidate(ctx, out.symbols)
    steps.publish_update(ctx, shard, out, committed_at=committed_at)
    return {"symbols": n, "ticks": int(len(index)), **rest}
