"""The ``pipeline`` task's ingest: one tick, every given (or every live) symbol up to its bar."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from agentsys import defaults
from agentsys.errors import InputError
from worker.agents.store import Stored
from worker.context import JobContext
from worker.jobs.ingest.common import EMPTY, Input, require_known, us, with_empty
from worker.sources.fetch import LIVE_SOURCES, Fetched, due_bars, fetch, latest_bar


def prices(ctx: JobContext, conn: psycopg.Connection, task_id: str, params: dict[str, Any]) -> Input:
    got, covered = tick(ctx, conn, params)
    return Input(got, covered=covered)


def tick(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> tuple[Fetched, Stored | None]:
    """One bar (of PRICE_INTERVAL_S) for the given symbols (or every live symbol) from their sources.

    Ticks may run late, twice or out of order (two workers, a retry), and prices are
    append-only, so a tick brings each symbol *up to* its bar instead of "adding bar t":
    it also fetches the bars missing since the symbol's newest price (at most
    MAX_CATCHUP_BARS), and a symbol whose newest price is already at or past the bar (a
    later tick got there first) is *covered*: nothing is fetched, and its target is the
    bar, returned as the second value. Sources are deterministic per (symbol, bar), so two
    ticks that both fetch a bar store it once (the second is an identical no-op).
    """
    names = params.get("symbols")
    if names is None:
        rows = conn.execute("SELECT symbol, source FROM symbols WHERE source = ANY(%s) ORDER BY symbol",
                            (list(LIVE_SOURCES),)).fetchall()
    else:
        rows = conn.execute("SELECT symbol, source FROM symbols WHERE symbol = ANY(%s) ORDER BY symbol",
                            (names,)).fetchall()
        require_known(names, [r[0] for r in rows])
    not_live = [r[0] for r in rows if r[1] not in LIVE_SOURCES]
    if not_live:
        raise InputError(f"symbols without a live source cannot tick: {', '.join(not_live[:20])}")
    when = params.get("ts")
    interval = ctx.settings.price_interval_s
    bar = us(when) if when else latest_bar(time.time(), interval)
    marks: dict[str, datetime] = dict(conn.execute(
        "SELECT symbol, last_ts FROM progress WHERE agent = 'price' AND symbol = ANY(%s)",
        ([r[0] for r in rows],)).fetchall())
    wanted: list[tuple[str, str]] = []
    bars_each: list[np.ndarray] = []
    covered: list[str] = []
    for symbol, source in rows:
        last = marks.get(symbol)
        last_us = None if last is None else us(last)
        if last_us is not None and last_us >= bar:
            covered.append(symbol)
            continue
        wanted.append((symbol, source))
        bars_each.append(np.array([bar], dtype=np.int64) if last_us is None
                         else due_bars(last_us, bar, interval, defaults.MAX_CATCHUP_BARS))
    bar_at = datetime.fromtimestamp(bar / 1_000_000, UTC)
    done = Stored(covered, [bar_at] * len(covered), [bar_at] * len(covered), [1] * len(covered), 0, []) \
        if covered else None
    got = fetch(ctx, wanted, bars_each, interval_s=interval) if wanted else Fetched([], *EMPTY)
    return with_empty(got, np.array([bar], dtype=np.int64)), done
