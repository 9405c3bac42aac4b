"""Compact live updates for the gateway: the last value per symbol of each commit."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from worker.agents.base import publish
from worker.context import JobContext


def iso(ts_us: Any) -> str:
    return str(np.datetime64(int(ts_us), "us")) + "+00:00"


def publish_prices(ctx: JobContext, shard: int, names: list[str], index: np.ndarray, ts: np.ndarray,
                   price: np.ndarray) -> None:
    """The newest price of each symbol of a commit."""
    if not len(index):
        return
    newest = np.full(len(names), -1, dtype=np.int64)
    order = np.lexsort((ts, index))  # by symbol, then ts: the last row of each symbol wins
    newest[index[order]] = order
    publish(ctx, ctx.keys.channel_updates, {
        "kind": "update", "agent": "price", "shard": shard, "committed_at": time.time(),
        "symbols": {names[i]: {"ts": iso(ts[r]), "price": float(price[r])}
                    for i, r in enumerate(newest.tolist()) if r >= 0},
    })
