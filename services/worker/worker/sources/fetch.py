"""Prices of many symbols at given bars from their sources: what the price agent and the
ingest of ``pipeline`` and ``backfill`` tasks share.

Synthetic symbols sharing the same bars are priced in one vectorised call; an http symbol
whose source fails is listed in ``skipped`` with its reason instead of failing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agentsys.errors import AgentSysError
from agentsys.logging import get_logger
from worker.context import JobContext

LIVE_SOURCES = ("synthetic", "http")
"""Sources that have a price at every bar (ticks and the price agent use them)."""
log = get_logger("worker.fetch")


def latest_bar(now_s: float, interval_s: int) -> int:
    """Open time (epoch microseconds) of the newest completed bar."""
    return (int(now_s) // interval_s) * interval_s * 1_000_000


def due_bars(last_us: int | None, now_us: int, interval_s: int, cap: int) -> np.ndarray:
    """The bars after ``last_us`` up to ``now_us`` (at most ``cap``, the newest)."""
    first, count = due_many(np.array([-1 if last_us is None else last_us], dtype=np.int64),
                            np.array([last_us is not None]), now_us, interval_s, cap)
    return bar_arrays(first, count, interval_s)[0]


def due_many(last_us: np.ndarray, has_last: np.ndarray, now_us: int, interval_s: int, cap: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`due_bars` for many symbols at once: each one's first due bar and how many are due."""
    step = interval_s * 1_000_000
    floor = now_us - (cap - 1) * step
    first = np.where(has_last, np.maximum(last_us + step, floor), floor)
    return first, np.maximum((now_us - first) // step + 1, 0)


def bar_arrays(first: np.ndarray, count: np.ndarray, interval_s: int) -> list[np.ndarray]:
    """Each symbol's ``count`` bars from ``first``; symbols due the same bars (the usual case)
    share one array, which ``fetch`` prices in one call."""
    step = interval_s * 1_000_000
    due = list(zip(first.tolist(), count.tolist(), strict=True))
    bars = {d: np.arange(d[0], d[0] + d[1] * step, step, dtype=np.int64) for d in set(due)}
    return [bars[d] for d in due]


@dataclass(frozen=True, slots=True)
class Fetched:
    """Prices from the sources: row ``r`` is symbol ``names[index[r]]`` at ``ts[r]``.

    ``skipped`` holds the symbols whose source failed, as ``{"symbol", "reason"}``, so
    callers can say so (a task's result) instead of dropping them unseen.
    """

    names: list[str]
    index: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    skipped: list[dict[str, str]] = field(default_factory=list)


def fetch(ctx: JobContext, wanted: list[tuple[str, str]], bars: list[np.ndarray], *, interval_s: int) -> Fetched:
    """Prices of each wanted (symbol, source) at its due bars, which are ``interval_s`` apart.

    The http source is asked for bars of ``interval_s`` (a backfill's own interval, not
    necessarily PRICE_INTERVAL_S). A symbol whose source raises is left out and listed
    in ``skipped`` with the error; the others are still returned.
    """
    from agentsys.sources import synthetic

    names = [s for s, _ in wanted]
    out_i, out_t, out_p = [], [], []
    # symbols sharing the same bars (the usual case) are priced in one vectorised call
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, src) in enumerate(wanted):
        if src == "synthetic":
            groups.setdefault((int(bars[i][0]), len(bars[i])), []).append(i)
    for members in groups.values():
        ts = bars[members[0]]
        prices = synthetic.prices([names[i] for i in members], ts, seed=ctx.settings.synthetic_seed)
        out_i.append(np.repeat(np.array(members, dtype=np.int64), len(ts)))
        out_t.append(np.tile(ts, len(members)))
        out_p.append(prices.reshape(-1))
    skipped: list[dict[str, str]] = []
    for i, (symbol, src) in enumerate(wanted):
        if src != "http":
            continue
        try:
            ts, closes = fetch_http(ctx, symbol, int(bars[i][0]), int(bars[i][-1]), interval_s=interval_s)
        except AgentSysError as error:
            log.warning("http source failed; symbol skipped", symbol=symbol, error=str(error))
            skipped.append({"symbol": symbol, "reason": str(error)})
            continue
        out_i.append(np.full(len(ts), i, dtype=np.int64))
        out_t.append(np.asarray(ts, dtype=np.int64))
        out_p.append(np.asarray(closes, dtype=np.float64))
    if not out_i:
        return Fetched(names, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), skipped)
    return Fetched(names, np.concatenate(out_i), np.concatenate(out_t), np.concatenate(out_p), skipped)


def fetch_http(ctx: JobContext, symbol: str, start_us: int, end_us: int, *, interval_s: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Closes of ``symbol``'s ended ``interval_s`` bars in [start_us, end_us] from the http source."""
    from worker.sources import binance

    return binance.fetch_closes(ctx.redis, ctx.keys, symbol, start_us, end_us, interval_s=interval_s)
