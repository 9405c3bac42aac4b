"""A shard's symbols and one agent's progress for them, read under the shard lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from agentsys import flags, triggers
from worker.context import JobContext


@dataclass
class ShardState:
    symbols: list[str]
    periods: npt.NDArray[np.int64]  # (n, 3)
    progress: list[tuple[Any, ...]]  # (last_ts, n, seed_sum, ema_fast, ema_mid, ema_slow, state) per symbol
    """``last_ts`` as int microseconds since 1970 (None: no row): cheaper to fetch than a datetime."""


def load(ctx: JobContext, conn: psycopg.Connection, agent: str, shard: int) -> ShardState:
    """Enabled symbols of the shard, in symbol order, with the agent's progress."""
    return load_many(ctx, conn, (agent,), shard).states[agent]


@dataclass
class Loaded:
    """A shard's enabled symbols with several agents' progress, read in one query."""

    states: dict[str, ShardState]
    sources: list[str]


PROGRESS = ("(EXTRACT(EPOCH FROM {g}.last_ts) * 1000000)::int8, COALESCE({g}.n, 0), COALESCE({g}.seed_sum, 0),"
            " {g}.ema_fast, {g}.ema_mid, {g}.ema_slow, {g}.state")
WIDTH = 7
"""Columns of one agent's progress in ShardState.progress."""


def load_many(ctx: JobContext, conn: psycopg.Connection, agents: Sequence[str], shard: int) -> Loaded:
    """Enabled symbols of the shard, in symbol order, with each agent's progress (and each symbol's source)."""
    disabled = flags.disabled_symbols(ctx.redis, ctx.keys)
    aliases = [f"g{i}" for i in range(len(agents))]
    rows = conn.execute(
        "SELECT s.symbol, s.source, s.ema_fast, s.ema_mid, s.ema_slow, "  # type: ignore[arg-type]
        + ", ".join(PROGRESS.format(g=g) for g in aliases)
        + " FROM symbols s "
        + " ".join(f"LEFT JOIN progress {g} ON {g}.agent = %s AND {g}.symbol = s.symbol" for g in aliases)
        + " WHERE s.shard = %s ORDER BY s.symbol",
        (*agents, shard),
    ).fetchall()
    rows = [r for r in rows if r[0] not in disabled]
    symbols = [r[0] for r in rows]
    periods = np.array([r[2:5] for r in rows], dtype=np.int64).reshape(-1, 3)
    states = {agent: ShardState(symbols, periods, [tuple(r[5 + WIDTH * i:5 + WIDTH * (i + 1)]) for r in rows])
              for i, agent in enumerate(agents)}
    return Loaded(states, [r[1] for r in rows])


def per_symbol_limit(ctx: JobContext, n: int) -> int:
    """Rows a job reads at most per symbol, so that it holds at most MAX_JOB_TICKS symbol-ticks."""
    return max(1, ctx.settings.max_job_ticks // max(n, 1))


def continue_if(ctx: JobContext, agent: str, shard: int, more: bool) -> dict[str, Any]:
    """After the commit: a job that stopped at MAX_JOB_TICKS triggers its next run; its result says so."""
    if not more:
        return {}
    triggers.trigger(ctx.redis, ctx.keys, agent, shard)
    return {"more": True}


def ragged(index: npt.NDArray[np.integer[Any]], values: npt.NDArray[Any], n: int, fill: Any = np.nan
           ) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows sorted by symbol index -> (n, width) matrix left-aligned, counts, column of each row."""
    counts = np.bincount(index, minlength=n).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cols = np.arange(len(index), dtype=np.int64) - starts[index]
    width = int(counts.max()) if n and len(index) else 0
    matrix = np.full((n, width), fill, dtype=values.dtype if fill is not np.nan else np.float64)
    if len(index):
        matrix[index, cols] = values
    return matrix, counts, cols
