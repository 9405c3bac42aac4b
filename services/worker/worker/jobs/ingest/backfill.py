"""The ``backfill`` task's ingest: a time range of bars from each symbol's source."""

from __future__ import annotations

from typing import Any

import psycopg

from agentsys.errors import InputError
from worker.context import JobContext
from worker.jobs.ingest.common import Input, require_known, us, with_empty
from worker.sources.fetch import Fetched, fetch


def prices(ctx: JobContext, conn: psycopg.Connection, task_id: str, params: dict[str, Any]) -> Input:
    return Input(backfill(ctx, conn, params), replace=bool(params.get("replace")))


def backfill(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> Fetched:
    """The bars of ``interval_s`` (default PRICE_INTERVAL_S) in [start, end] from each symbol's source."""
    from agentsys.sources import synthetic

    names = params["symbols"]
    rows = conn.execute("SELECT symbol, source FROM symbols WHERE symbol = ANY(%s) ORDER BY symbol",
                        (names,)).fetchall()
    require_known(names, [r[0] for r in rows])
    interval = params.get("interval_s") or ctx.settings.price_interval_s
    bars = synthetic.bar_times(us(params["start"]), us(params["end"]), interval)
    if len(bars) == 0:
        raise InputError("the time range holds no bar")
    if len(bars) * len(rows) > 50_000_000:
        raise InputError("backfill too large: split it (at most 50,000,000 symbol-bars per task)")
    source = params.get("source")
    wanted = [(r[0], source or r[1]) for r in rows]
    if any(src == "http" for _, src in wanted):
        _check_http_interval(interval)
    return with_empty(fetch(ctx, wanted, [bars] * len(rows), interval_s=interval), bars)


def _check_http_interval(interval_s: int) -> None:
    """Refuse, before fetching anything, an interval the http source cannot build bars of."""
    from worker.sources import binance

    try:
        binance.kline_interval(interval_s)
    except binance.UnsupportedInterval as error:
        raise InputError(str(error)) from None
