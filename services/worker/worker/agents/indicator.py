"""The indicator agent: advance the three EMAs of a shard over every price it has not seen."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from agentsys import triggers
from worker.agents import bulk, ema
from worker.agents import shard as shards
from worker.agents.base import lock_shard, publish, shard_job
from worker.agents.publishing import invalidate, iso
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
    ts, price = got.arrays["ts"], got.arrays["price"]
    if not len(index):
        conn.rollback()
        return {"symbols": n, "ticks": 0}
    matrix, counts, cols = shards.ragged(index, price, n)
    carry = ema.Carry(
        n=np.array([p[1] for p in state.progress], dtype=np.int64),
        seed_sum=np.array([p[2] for p in state.progress], dtype=np.float64),
        ema=np.array([[np.nan if v is None else v for v in p[3:6]] for p in state.progress],
                     dtype=np.float64).reshape(-1, 3),
        periods=state.periods,
    )
    emas = ema.advance(matrix, counts, carry)[index, cols]  # (rows, 3)
    codes = ema.states(emas)
    state_names = np.array(["FLAT", "BULL", "BEAR", None], dtype=object)[np.where(codes < 0, 3, codes)]
    bulk.copy_in(conn, "indicators", [
        ("symbol", "text", bulk.Text(index, state.symbols)), ("ts", "timestamptz", ts), ("price", "float8!", price),
        ("ema_fast", "float8", emas[:, 0]), ("ema_mid", "float8", emas[:, 1]), ("ema_slow", "float8", emas[:, 2]),
        ("state", "text", bulk.Text(codes, ema.STATE_LIST)),
    ])
    last = np.cumsum(counts) - 1
    moved = counts > 0
    last_rows = last[moved]
    symbols = [s for s, m in zip(state.symbols, moved, strict=True) if m]
    conn.execute(
        """
        INSERT INTO progress (agent, symbol, last_ts, n, seed_sum, ema_fast, ema_mid, ema_slow, state)
        SELECT 'indicator', * FROM unnest(%s::text[], %s::timestamptz[], %s::int8[], %s::float8[],
                                          %s::float8[], %s::float8[], %s::float8[], %s::text[])
        ON CONFLICT (agent, symbol) DO UPDATE SET
            last_ts = EXCLUDED.last_ts, n = EXCLUDED.n, seed_sum = EXCLUDED.seed_sum,
            ema_fast = EXCLUDED.ema_fast, ema_mid = EXCLUDED.ema_mid, ema_slow = EXCLUDED.ema_slow,
            state = EXCLUDED.state
        """,
        (
            symbols,
            bulk.us_to_datetimes(ts[last_rows]),
            carry.n[moved].tolist(),
            carry.seed_sum[moved].tolist(),
            *(shards.nan_to_none(carry.ema[moved, k]) for k in range(3)),
            state_names[last_rows].tolist(),
        ),
    )
    conn.commit()
    committed_at = time.time()
    rest = shards.continue_if(ctx, AGENT, shard, int(got.counts.max()) >= limit)
    triggers.trigger_downstream(ctx.redis, ctx.keys, AGENT, [shard])
    invalidate(ctx, symbols)
    publish(ctx, ctx.keys.channel_updates, {
        "kind": "update", "agent": AGENT, "shard": shard, "committed_at": committed_at,
        "symbols": {
            sym: {"ts": iso(ts[r]), "price": float(price[r]), **_emas(emas[r]), "state": state_names[r]}
            for sym, r in zip(symbols, last_rows.tolist(), strict=True)
        },
    })
    return {"symbols": n, "ticks": int(len(index)), **rest}



def _emas(row: np.ndarray) -> dict[str, float | None]:
    return {k: (None if v != v else float(v)) for k, v in zip(("ema_fast", "ema_mid", "ema_slow"), row.tolist(),
                                                                strict=True)}
