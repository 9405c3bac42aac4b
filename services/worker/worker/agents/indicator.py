"""The indicator agent: advance the three EMAs of a shard over every price it has not seen."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from agentsys import triggers
from worker.agents import bulk, ema
from worker.agents import shard as shards
from worker.agents.base import lock_shard, publish, shard_job
from worker.agents.publishing import invalidate, iso
from worker.context import JobContext

AGENT = "indicator"
STATE_NAMES = np.array(["FLAT", "BULL", "BEAR", None], dtype=object)
"""State names by code, None at -1 (undefined)."""


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
    out = advance(conn, state, index, got.arrays["ts"], got.arrays["price"])
    conn.commit()
    committed_at = time.time()
    rest = shards.continue_if(ctx, AGENT, shard, int(got.counts.max()) >= limit)
    triggers.trigger_downstream(ctx.redis, ctx.keys, AGENT, [shard])
    invalidate(ctx, out.symbols)
    publish_update(ctx, shard, out, committed_at=committed_at)
    return {"symbols": n, "ticks": int(len(index)), **rest}


@dataclass(frozen=True, slots=True)
class Advanced:
    """What :func:`advance` computed and stored: rows in input order, and each moved symbol's last row."""

    index: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    emas: npt.NDArray[np.float64]  # (rows, 3), NaN while undefined
    codes: npt.NDArray[np.int8]  # state per row, -1 while undefined
    symbols: list[str]  # the symbols that moved, in shard order
    last_rows: npt.NDArray[np.int64]  # the row of each one's newest price


def advance(conn: psycopg.Connection, state: shards.ShardState, index: npt.NDArray[np.int64],
            ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64]) -> Advanced:
    """Advance the EMAs over new prices (rows sorted by symbol index, then ts), in the caller's
    transaction: indicator rows by binary COPY, then the progress of every symbol that moved."""
    n = len(state.symbols)
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
            bulk.Texts(bulk.Text(np.flatnonzero(moved), state.symbols)),
            bulk.Timestamps(ts[last_rows]),
            bulk.Int8s(carry.n[moved]),
            bulk.Float8s(carry.seed_sum[moved]),
            *(bulk.Float8s(carry.ema[moved, k]) for k in range(3)),
            bulk.Texts(bulk.Text(codes[last_rows], ema.STATE_LIST)),
        ),
    )
    return Advanced(index, ts, price, emas, codes, symbols, last_rows)


def publish_update(ctx: JobContext, shard: int, out: Advanced, *, committed_at: float) -> None:
    """Each moved symbol's newest price, EMAs and state, after the commit."""
    names = STATE_NAMES[out.codes[out.last_rows]].tolist()
    publish(ctx, ctx.keys.channel_updates, {
        "kind": "update", "agent": AGENT, "shard": shard, "committed_at": committed_at,
        "symbols": {
            sym: {"ts": iso(out.ts[r]), "price": float(out.price[r]), **_emas(out.emas[r]), "state": name}
            for sym, r, name in zip(out.symbols, out.last_rows.tolist(), names, strict=True)
        },
    })


def _emas(row: np.ndarray) -> dict[str, float | None]:
    return {k: (None if v != v else float(v)) for k, v in zip(("ema_fast", "ema_mid", "ema_slow"), row.tolist(),
                                                                strict=True)}
