"""The indicator and bang agents' steps: what their jobs do between reading and committing.

Shared by the agents' own jobs (``worker.agents.indicator``, ``worker.agents.bang``) and the
fused live tick (``worker.agents.live``), which runs both inside the price job. Each step
works in its caller's transaction; its ``publish_*``/``announce_*`` partner runs after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from worker import lifecycle
from worker.agents import bulk, ema, progress
from worker.agents import shard as shards
from worker.agents.base import publish
from worker.agents.publishing import invalidate, publish_columns
from worker.context import JobContext

STATE_NAMES = np.array(["FLAT", "BULL", "BEAR", None], dtype=object)
"""State names by code, None at -1 (undefined)."""
EVENT_FIELDS = ("id", "symbol", "ts", "from_state", "to_state", "price", "ema_fast", "ema_mid", "ema_slow")


@dataclass(frozen=True, slots=True)
class Emas:
    """What :func:`advance` computed and stored: rows in input order, and each moved symbol's last row."""

    index: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    emas: npt.NDArray[np.float64]  # (rows, 3), NaN while undefined
    codes: npt.NDArray[np.int8]  # state per row, -1 while undefined
    symbols: list[str]  # the symbols that moved, in shard order
    last_rows: npt.NDArray[np.int64]  # the row of each one's newest price


def advance_emas(conn: psycopg.Connection, state: shards.ShardState, index: npt.NDArray[np.int64],
            ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64]) -> Emas:
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
    progress.write(conn, "indicator", state.symbols, np.flatnonzero(moved), _known(state, moved), [
        ("last_ts", "timestamptz", ts[last_rows]), ("n", "int8", carry.n[moved]),
        ("seed_sum", "float8", carry.seed_sum[moved]),
        *((name, "float8", carry.ema[moved, k]) for k, name in enumerate(("ema_fast", "ema_mid", "ema_slow"))),
        ("state", "text", bulk.Text(codes[last_rows], ema.STATE_LIST)),
    ])
    return Emas(index, ts, price, emas, codes, symbols, last_rows)


def publish_update(ctx: JobContext, shard: int, out: Emas, *, committed_at: float) -> None:
    """Each moved symbol's newest price, EMAs and state, after the commit (columns: see
    ``worker.agents.publishing.publish_columns``)."""
    rows = out.last_rows
    publish_columns(ctx, "indicator", shard, committed_at, out.symbols, out.ts[rows], {
        "price": out.price[rows], "ema_fast": out.emas[rows, 0], "ema_mid": out.emas[rows, 1],
        "ema_slow": out.emas[rows, 2], "state": STATE_NAMES[out.codes[rows]]})


@dataclass(frozen=True, slots=True)
class States:
    """What :func:`advance` recorded: the bangs inserted, the symbols that moved, the tasks it changed."""

    events: list[tuple[Any, ...]]  # EVENT_FIELDS
    symbols: list[str]
    tasks: list[Any]
    covered_us: int | None
    """The shard's bang watermark after this commit (see :func:`covered`)."""


def advance_states(conn: psycopg.Connection, state: shards.ShardState, index: npt.NDArray[np.int64],
            ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64], emas: npt.NDArray[np.float64],
            code: npt.NDArray[np.int8]) -> States:
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
    progress.write(conn, "bang", state.symbols, np.flatnonzero(moved), _known(state, moved), [
        ("last_ts", "timestamptz", new_last), ("state", "text", bulk.Text(code[last[moved]], ema.STATE_LIST))])
    changed = lifecycle.complete_tasks(conn, symbols)
    return States(events, symbols, changed, covered(state.progress, moved, new_last))


def announce_bangs(ctx: JobContext, shard: int, out: States, *, committed_at: float) -> None:
    """After the commit: the bangs (their symbols' cached history dropped first) and the tasks changed."""
    if out.events:
        invalidate(ctx, sorted({e[1] for e in out.events}))  # before the news: a client that reloads reads it
        publish(ctx, ctx.keys.channel_bangs, {
            "kind": "bang", "shard": shard, "committed_at": committed_at,
            "events": [dict(zip(EVENT_FIELDS, (*e[:2], e[2].isoformat(), *e[3:]), strict=True)) for e in out.events],
        })
    lifecycle.announce(ctx, out.tasks)


def _known(state: shards.ShardState, moved: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Per moved symbol: it has a progress row already (the load's LEFT JOIN found one)."""
    return np.array([p[0] is not None for p in state.progress], dtype=bool)[moved]


def covered(progress: list[tuple[Any, ...]], moved: np.ndarray, new_last: np.ndarray) -> int | None:
    """The shard's bang watermark after this commit: the oldest symbol's last ts (None while one has none).

    Logged with ``committed_at`` so the live bench can time each bar from its end to the
    commit that covers it for the whole shard (``ended_at`` is the transaction's start).
    """
    last = np.array([-1 if p[0] is None else p[0] for p in progress], dtype=np.int64)
    last[moved] = new_last
    return int(last.min()) if len(last) and last.min() >= 0 else None
