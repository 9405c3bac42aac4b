"""Compact live updates for the gateway: the last value per symbol of each commit."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from worker.agents.base import publish
from worker.context import JobContext


def iso(ts_us: Any) -> str:
    return str(np.datetime64(int(ts_us), "us")) + "+00:00"


def publish_prices(ctx: JobContext, shard: int, symbols: np.ndarray, ts: np.ndarray, price: np.ndarray) -> None:
    last: dict[str, int] = {}
    for row, symbol in enumerate(symbols.tolist()):
        if symbol not in last or ts[row] >= ts[last[symbol]]:
            last[symbol] = row
    publish(ctx, ctx.keys.channel_updates, {
        "kind": "update", "agent": "price", "shard": shard, "committed_at": time.time(),
        "symbols": {s: {"ts": iso(ts[r]), "price": float(price[r])} for s, r in last.items()},
    })
