"""The bang agent: advance the state machine of a shard, record bangs; its commits finish composite tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from agentsys import timefmt
from worker import lifecycle
from worker.agents import bulk, ema
from worker.agents import shard as shards
from worker.agents.base import lock_shard, publish, shard_job
from worker.agents.publishing import invalidate
from worker.context import JobContext

AGENT = "bang"
EVENT_FIELDS = ("id", "symbol", "ts", "from_state", "to_state", "price", "ema_fast", "ema_mid", "ema_slow")


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
    out = advance(conn, state, index, rows["ts"], rows["price"], emas, rows["code"].astype(np.int8))
    conn.commit()
    committed_at = time.time()  # the gateway's latency clock starts here
    rest = shards.continue_if(ctx, AGENT, shard, int(got.counts.max()) >= limit)
    announce(ctx, shard, out, committed_at=committed_at)
    return {"symbols": n, "ticks": int(len(index)), "bangs": len(out.events), "tasks_updated": len(out.tasks),
            **rest, "committed_at": round(committed_at, 6), "covered_us": out.covered_us}


@dataclass(frozen=True, slots=True)
class Advanced:
    """What :func:`advance` recorded: the bangs inserted, the symbols that moved, the tasks it changed."""

    events: list[tuple[Any, ...]]  # EVENT_FIELDS
    symbols: list[str]
    tasks: list[Any]
    covered_us: int | None
    """The shard's bang watermark after this commit (see :func:`covered`)."""


def advance(conn: psycopg.Connection, state: shards.ShardState, index: npt.NDArray[np.int64],
            ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64], emas: npt.NDArray[np.float64],
            code: npt.NDArray[np.int8]) -> Advanced:
    """Advance the state machine over new indicator rows (sorted by symbol index, then ts), in the
    caller's transaction: bangs, the progress of every symbol that moved, composite tasks reached."""
    n = len(state.symbols)
    codes, counts, cols = shards.ragged(index, code, n, fill=np.int8(-1))
    previous = np.array([ema.STATE_CODES.get(p[6], -1) if p[6] else -1 for p in state.progress], dtype=np.int8)
    hit_sym, hit_col, hit_from = ema.bangs(codes, counts, previous)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    hit = starts[hit_sym] + hit_col  # row numbers of the bangs
    events = conn.execute(
        """
        INSERT INTO bang_events (symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow)
        SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[],
                             %s::float8[], %s::float8[], %s::float8[], %s::float8[])
        ON CONFLICT (symbol, ts) DO NOTHING
        RETURNING id, symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow
        """,
        (
            bulk.Texts(bulk.Text(index[hit], state.symbols)), bulk.Timestamps(ts[hit]),
            bulk.Texts(bulk.Text(hit_from, ema.STATE_LIST)), bulk.Texts(bulk.Text(code[hit], ema.STATE_LIST)),
            bulk.Float8s(price[hit]), *(bulk.Float8s(emas[hit, k]) for k in range(3)),
        ),
    ).fetchall() if len(hit) else []
    last = np.cumsum(counts) - 1
    moved = counts > 0
    symbols = [s for s, m in zip(state.symbols, moved.tolist(), strict=True) if m]
    new_last = ts[last[moved]]
    conn.execute(
        """
        INSERT INTO progress (agent, symbol, last_ts, state)
        SELECT 'bang', * FROM unnest(%s::text[], %s::timestamptz[], %s::text[])
        ON CONFLICT (agent, symbol) DO UPDATE SET last_ts = EXCLUDED.last_ts, state = EXCLUDED.state
        """,
        (bulk.Texts(bulk.Text(np.flatnonzero(moved), state.symbols)), bulk.Timestamps(new_last),
         bulk.Texts(bulk.Text(code[last[moved]], ema.STATE_LIST))),
    )
    changed = lifecycle.complete_tasks(conn, symbols)
    return Advanced(events, symbols, changed, covered(state.progress, moved, new_last))


def announce(ctx: JobContext, shard: int, out: Advanced, *, committed_at: float) -> None:
    """After the commit: the bangs (their symbols' cached history dropped first) and the tasks changed."""
    if out.events:
        invalidate(ctx, sorted({e[1] for e in out.events}))  # before the news: a client that reloads reads it
        publish(ctx, ctx.keys.channel_bangs, {
            "kind": "bang", "shard": shard, "committed_at": committed_at,
            "events": [dict(zip(EVENT_FIELDS, (*e[:2], e[2].isoformat(), *e[3:]), strict=True)) for e in out.events],
        })
    lifecycle.announce(ctx, out.tasks)


def covered(progress: list[tuple[Any, ...]], moved: np.ndarray, new_last: np.ndarray) -> int | None:
    """The shard's bang watermark after this commit: the oldest symbol's last ts (None while one has none).

    Logged with ``committed_at`` so the live bench can time each bar from its end to the
    commit that covers it for the whole shard (``ended_at`` is the transaction's start).
    """
    last = np.array([-1 if p[0] is None else timefmt.us_of(p[0]) for p in progress], dtype=np.int64)
    last[moved] = new_last
    return int(last.min()) if len(last) and last.min() >= 0 else None
