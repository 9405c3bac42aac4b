"""Composite tasks (``pipeline``, ``replay``, ``backfill``): ingest prices, record targets.

The job never waits for the agents: it stores the prices, records per symbol the ts the
bang agent must reach, and triggers the indicator agent. The bang job that reaches the
last target finishes the task in its own transaction.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import structlog
from rq import Retry

from agentsys import defaults, tasks, triggers
from agentsys import symbols as universe
from agentsys.errors import InputError
from agentsys.logging import get_logger
from agentsys.models import TaskState
from agentsys.symbols import SymbolSpec
from worker.agents import bulk
from worker.agents.bang import settle
from worker.agents.base import TRANSIENT, backoff
from worker.agents.price import LIVE_SOURCES, fetch, latest_bar
from worker.agents.publishing import invalidate, publish_prices
from worker.agents.store import Stored, reset_indicators, store_prices
from worker.context import JobContext, current

log = get_logger("worker.ingest")


def run(task_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = current()
    begin = time.perf_counter()
    with structlog.contextvars.bound_contextvars(task_id=task_id, job_id=ctx.job_id, agent="price"):
        try:
            summary = _run(ctx, task_id)
        except TRANSIENT as error:
            log.warning("transient error; will retry", error=str(error).splitlines()[0] if str(error) else "")
            return Retry(max=defaults.RETRY_MAX, interval=backoff())  # type: ignore[return-value]
        duration = round((time.perf_counter() - begin) * 1000, 3)
        log.info("job finished", duration_ms=duration, **{k: v for k, v in summary.items() if k != "shards"})
        return summary


def _run(ctx: JobContext, task_id: str) -> dict[str, Any]:
    with ctx.connect_db() as conn:
        task = tasks.get(conn, task_id)
        if task.ended:
            log.info("task already ended; nothing done", state=task.state.value)
            return {"skipped": f"task {task.state.value}"}
        started = tasks.set_state(conn, task_id, TaskState.started, worker=ctx.worker, count_attempt=True)
        conn.commit()
        if started:
            tasks.publish_state(ctx.redis, ctx.keys, started)
        try:
            return ingest(ctx, conn, task.type, task_id, task.params)
        except InputError:
            conn.rollback()
            conn.execute("DELETE FROM staged_prices WHERE task_id = %s", (task_id,))
            conn.commit()
            raise


def ingest(ctx: JobContext, conn: psycopg.Connection, kind: str, task_id: str, params: dict[str, Any]
           ) -> dict[str, Any]:
    if conn.execute("SELECT 1 FROM task_targets WHERE task_id = %s LIMIT 1", (task_id,)).fetchone():
        # a second delivery of a job that already committed: just make sure the agents run
        shards = universe.shards_of(conn, [r[0] for r in conn.execute(
            "SELECT symbol FROM task_targets WHERE task_id = %s", (task_id,))])
        changed = settle(conn, [task_id])
        conn.commit()
        _after(ctx, shards, changed)
        return {"symbols": 0, "ticks": 0, "inserted": 0, "repeat": True}
    if kind == "replay":
        names, index, ts, price = staged(conn, task_id)
        prepare_replay_symbols(conn, names, params)
        replace = bool(params.get("replace"))
    elif kind == "pipeline":
        names, index, ts, price = tick(ctx, conn, params)
        replace = False
    elif kind == "backfill":
        names, index, ts, price = backfill(ctx, conn, params)
        replace = bool(params.get("replace"))
    else:
        raise InputError(f"task type {kind!r} is not an ingest task")
    stored = store_prices(conn, names, index, ts, price, replace=replace)
    record_targets(conn, task_id, stored)
    conn.execute("DELETE FROM staged_prices WHERE task_id = %s", (task_id,))
    changed = settle(conn, [task_id])
    conn.commit()
    _after(ctx, stored.shards, changed)
    invalidate(ctx, stored.symbols)
    publish_prices(ctx, -1, names, index, ts, price)
    return {"symbols": len(stored.symbols), "ticks": int(sum(stored.ticks)), "inserted": stored.inserted}


def _after(ctx: JobContext, shards: list[int], changed: list[Any]) -> None:
    triggers.trigger_many(ctx.redis, ctx.keys, "indicator", shards)
    for run in changed:
        tasks.publish_state(ctx.redis, ctx.keys, run)


def staged(conn: psycopg.Connection, task_id: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    names = [r[0] for r in conn.execute(
        "SELECT DISTINCT symbol FROM staged_prices WHERE task_id = %s ORDER BY symbol", (task_id,))]
    if not names:
        raise InputError(f"task {task_id} has no staged rows (already ingested, or staged elsewhere)")
    got = bulk.copy_out_grouped(
        conn,
        """
        SELECT (s.rn - 1)::int4, array_agg(st.ts), array_agg(st.price)
        FROM staged_prices st JOIN unnest(%s::text[]) WITH ORDINALITY AS s(symbol, rn) USING (symbol)
        WHERE st.task_id = %s GROUP BY s.rn ORDER BY s.rn
        """,
        (names, task_id),
        [("ts", "timestamptz"), ("price", "float8")],
        order_by="ts",
    )
    return names, np.repeat(got.keys.astype(np.int64), got.counts), got.arrays["ts"], got.arrays["price"]


def prepare_replay_symbols(conn: psycopg.Connection, names: list[str], params: dict[str, Any]) -> None:
    """Create new symbols; refuse other periods for symbols that hold data unless replace."""
    wanted = (params.get("fast"), params.get("mid"), params.get("slow"))
    given = wanted[0] is not None
    existing = {r["symbol"]: r for r in universe.get_symbols(conn, names)}
    has_data = {r[0] for r in conn.execute(
        "SELECT symbol FROM progress WHERE agent = 'price' AND symbol = ANY(%s)", (list(existing),))}
    if given:
        differ = [s for s, r in existing.items() if (r["ema_fast"], r["ema_mid"], r["ema_slow"]) != wanted]
        clash = [s for s in differ if s in has_data]
        if clash and not params.get("replace"):
            shown = ", ".join(f"{s} ({existing[s]['ema_fast']}/{existing[s]['ema_mid']}/{existing[s]['ema_slow']})"
                              for s in clash[: defaults.ERROR_SAMPLES])
            raise InputError(f"symbols already hold data computed with other EMA periods: {shown}; "
                             f"use replace to recompute them with {wanted[0]}/{wanted[1]}/{wanted[2]}")
        if differ:
            conn.execute("UPDATE symbols SET ema_fast = %s, ema_mid = %s, ema_slow = %s WHERE symbol = ANY(%s)",
                         (*wanted, differ))
            if clash:
                reset_indicators(conn, clash)
    new = [n for n in names if n not in existing]
    if new:
        periods = dict(zip(("fast", "mid", "slow"), wanted, strict=True)) if given else {}
        universe.add_symbols(conn, [SymbolSpec(symbol=n, source="csv", **periods) for n in new])


def tick(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> tuple[Any, ...]:
    """One bar for the given symbols (or every live symbol) from their sources."""
    names = params.get("symbols")
    if names is None:
        rows = conn.execute("SELECT symbol, source FROM symbols WHERE source = ANY(%s) ORDER BY symbol",
                            (list(LIVE_SOURCES),)).fetchall()
    else:
        rows = conn.execute("SELECT symbol, source FROM symbols WHERE symbol = ANY(%s) ORDER BY symbol",
                            (names,)).fetchall()
        _require_known(names, [r[0] for r in rows])
    not_live = [r[0] for r in rows if r[1] not in LIVE_SOURCES]
    if not_live:
        raise InputError(f"symbols without a live source cannot tick: {', '.join(not_live[:20])}")
    when = params.get("ts")
    bar = _us(when) if when else latest_bar(time.time(), ctx.settings.price_interval_s)
    bars = np.array([bar], dtype=np.int64)
    return fetch(ctx, [(r[0], r[1]) for r in rows], [bars] * len(rows))


def backfill(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> tuple[Any, ...]:
    from agentsys.sources import synthetic

    names = params["symbols"]
    rows = conn.execute("SELECT symbol, source FROM symbols WHERE symbol = ANY(%s) ORDER BY symbol",
                        (names,)).fetchall()
    _require_known(names, [r[0] for r in rows])
    interval = params.get("interval_s") or ctx.settings.price_interval_s
    bars = synthetic.bar_times(_us(params["start"]), _us(params["end"]), interval)
    if len(bars) == 0:
        raise InputError("the time range holds no bar")
    if len(bars) * len(rows) > 50_000_000:
        raise InputError("backfill too large: split it (at most 50,000,000 symbol-bars per task)")
    source = params.get("source")
    return fetch(ctx, [(r[0], source or r[1]) for r in rows], [bars] * len(rows))


def record_targets(conn: psycopg.Connection, task_id: str, stored: Stored) -> None:
    conn.execute(
        "INSERT INTO task_targets (task_id, symbol, target_ts, ticks, first_ts)"
        " SELECT %s, * FROM unnest(%s::text[], %s::timestamptz[], %s::int[], %s::timestamptz[])"
        " ON CONFLICT DO NOTHING",
        (task_id, stored.symbols, stored.last_ts, stored.ticks, stored.first_ts),
    )
    conn.execute(
        """
        UPDATE task_targets t SET done = true FROM progress g
        WHERE t.task_id = %s AND g.agent = 'bang' AND g.symbol = t.symbol AND g.last_ts >= t.target_ts
        """,
        (task_id,),
    )


def _require_known(wanted: list[str], found: list[str]) -> None:
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise InputError(f"unknown symbols (add them first): {', '.join(missing[:20])}")


def _us(value: Any) -> int:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000 + when.microsecond
