"""Compact live updates for the gateway: the last value per symbol of each commit."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentsys.logging import get_logger
from worker.agents.base import TRANSIENT, publish
from worker.context import JobContext

log = get_logger("worker.publish")


def publish_prices(ctx: JobContext, shard: int, names: list[str], index: np.ndarray, ts: np.ndarray,
                   price: np.ndarray, *, committed_at: float) -> None:
    """The newest price of each symbol of a commit (``committed_at``: epoch seconds, taken right after it)."""
    if not len(index):
        return
    newest = np.full(len(names), -1, dtype=np.int64)
    order = np.lexsort((ts, index))  # by symbol, then ts: the last row of each symbol wins
    newest[index[order]] = order
    moved = np.flatnonzero(newest >= 0)
    rows = newest[moved]
    publish_columns(ctx, "price", shard, committed_at, [names[i] for i in moved.tolist()], ts[rows],
                    {"price": price[rows]})


def publish_columns(ctx: JobContext, agent: str, shard: int, committed_at: float, symbols: list[str],
                    ts_us: np.ndarray, values: dict[str, np.ndarray]) -> None:
    """An ``update`` as columns, one entry per symbol: ``{"columns": {"symbol": [...], "ts": [...], ...}}``.

    A live tick updates every symbol of a shard each second, and a dict per symbol made the
    JSON the worker's largest cost (the live profile); lists are encoded (and parsed) in C.
    The gateway turns them into the clients' ``{"symbols": {symbol: {...}}}`` only for the
    symbols a client asked for (``gateway.protocol.Columns``). NaN is sent as null.
    """
    columns: dict[str, list[Any]] = {
        "symbol": symbols, "ts": [t + "+00:00" for t in np.datetime_as_string(ts_us.astype("datetime64[us]"),
                                                                              unit="us").tolist()]}
    for name, column in values.items():
        if column.dtype.kind == "f" and np.isnan(column).any():
            columns[name] = [None if v != v else v for v in column.tolist()]
        else:
            columns[name] = column.tolist()
    for at in range(0, len(symbols), UPDATE_CHUNK):
        publish(ctx, ctx.keys.channel_updates, {
            "kind": "update", "agent": agent, "shard": shard, "committed_at": committed_at,
            "columns": {k: v[at:at + UPDATE_CHUNK] for k, v in columns.items()}})


UPDATE_CHUNK = 1000
"""Symbols per update message: the gateway handles one message at a time, so a bang that
arrives meanwhile waits for at most one chunk (not a whole shard's update) to be relayed."""


def invalidate(ctx: JobContext, symbols: list[str]) -> None:
    """New data landed for these symbols: drop their cached history (after commit)."""
    from agentsys.cache import invalidate_history

    try:
        invalidate_history(ctx.redis, ctx.keys, symbols)
    except TRANSIENT as error:  # the cache entries expire by themselves
        log.warning("cache invalidation failed", error=str(error))
