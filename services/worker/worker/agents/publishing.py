"""Compact live updates for the gateway: the last value per symbol of each commit."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentsys.logging import get_logger
from worker.agents.base import TRANSIENT, publish
from worker.context import JobContext

log = get_logger("worker.publish")


def iso(ts_us: Any) -> str:
    return str(np.datetime64(int(ts_us), "us")) + "+00:00"


def publish_prices(ctx: JobContext, shard: int, names: list[str], index: np.ndarray, ts: np.ndarray,
                   price: np.ndarray, *, committed_at: float) -> None:
    """The newest price of each symbol of a commit (``committed_at``: epoch seconds, taken right after it)."""
    if not len(index):
        return
    newest = np.full(len(names), -1, dtype=np.int64)
    order = np.lexsort((ts, index))  # by symbol, then ts: the last row of each symbol wins
    newest[index[order]] = order
    publish(ctx, ctx.keys.channel_updates, {
        "kind": "update", "agent": "price", "shard": shard, "committed_at": committed_at,
        "symbols": {names[i]: {"ts": iso(ts[r]), "price": float(price[r])}
                    for i, r in enumerate(newest.tolist()) if r >= 0},
    })


def invalidate(ctx: JobContext, symbols: list[str]) -> None:
    """New data landed for these symbols: drop their cached history (after commit)."""
    from agentsys.cache import invalidate_history

    try:
        invalidate_history(ctx.redis, ctx.keys, symbols)
    except TRANSIENT as error:  # the cache entries expire by themselves
        log.warning("cache invalidation failed", error=str(error))
