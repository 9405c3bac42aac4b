"""The bang agent: advance the state machine of a shard, record bangs; its commits finish composite tasks."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from worker.agents import bulk, steps
from worker.agents import shard as shards
from worker.agents.base import lock_shard, shard_job
from worker.context import JobContext

AGENT = "bang"


@shard_job(AGENT)
def run(ctx: JobContext, conn: psycopg.Connection, shard: int) -> dict[str, Any]:
    lock_shard(conn, AGENT, shard)
    state = shards.load(ctx, conn, AGENT, shard)
    n = len(state.symbols)
    limit = shards.per_symbol_limit(ctx, n)
    got = bulk.copy_out_grouped(
        conn,
        """
        SELECT (s.rn - 1)::int4, array_agg(x.ts), array_agg(x.price),
               array_agg(COALESCE(x.ema_fast, 'NaN')), array_agg(COALESCE(x.ema_mid, 'NaN')),
               array_agg(COALESCE(x.ema_slow, 'NaN')),
               array_agg((CASE x.state WHEN 'FLAT' THEN 0 WHEN 'BULL' THEN 1 WHEN 'BEAR' THEN 2 ELSE -1 END)::int2)
        FROM unnest(%s::text[]) WITH ORDINALITY AS s(symbol, rn)
        LEFT JOIN progress g ON g.agent = 'bang' AND g.symbol = s.symbol
        CROSS JOIN LATERAL (SELECT x.ts, x.price, x.ema_fast, x.ema_mid, x.ema_slow, x.state FROM indicators x
                            WHERE x.symbol = s.symbol AND x.ts > COALESCE(g.last_ts, '-infinity')
                            ORDER BY x.ts LIMIT %s) x
        GROUP BY s.rn ORDER BY s.rn
        """,
        (state.symbols, limit),
        [("ts", "timestamptz"), ("price", "float8"), ("f", "float8"), ("m", "float8"), ("s", "float8"),
         ("code", "int2")],
        order_by="ts",
    )
    rows = got.arrays
    index = np.repeat(got.keys.astype(np.int64), got.counts)
    if not len(index):
        conn.rollback()
        return {"symbols": n, "ticks": 0, "bangs": 0}
    emas = np.stack([rows["f"], rows["m"], rows["s"]], axis=1)
    out = steps.advance_states(conn, state, index, rows["ts"], rows["price"], emas, rows["code"].astype(np.int8))
    conn.commit()
    committed_at = time.time()  # the gateway's latency clock starts here
    rest = shards.continue_if(ctx, AGENT, shard, int(got.counts.max()) >= limit)
    steps.announce_bangs(ctx, shard, out, committed_at=committed_at)
    return {"symbols": n, "ticks": int(len(index)), "bangs": len(out.events), "tasks_updated": len(out.tasks),
            **rest, "committed_at": round(committed_at, 6), "covered_us": out.covered_us}
