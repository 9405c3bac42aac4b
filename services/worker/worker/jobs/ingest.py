"""Composite tasks (``pipeline``, ``replay``, ``backfill``): ingest prices, record targets.

The job never waits for the agents: it stores the prices, records per symbol the ts the
bang agent must reach, and triggers the indicator agent. The bang job that reaches the
last target finishes the task in its own transaction.

A symbol whose live source fails (breaker open, API down, unknown symbol) or has no
ended bar in the asked range is never dropped silently:

- when some symbols got prices, the task goes on with them and its ``result`` lists the
  others as ``skipped: [{"symbol", "reason"}]`` from the ingest on (kept when the bang
  agent finishes the task), so ``finished`` never hides a gap. Nothing of theirs was
  written, so the gap stays fillable: the price agent's next run brings live symbols up
  to date, and a backfill of just the skipped symbols fills the range (with ``replace``
  if newer prices of theirs were stored meanwhile: prices are append-only);
- when no symbol got any, the task fails with every reason (a SourceError): there is
  nothing it could finish, and ``POST /tasks/{id}/retry`` runs it again.
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
from agentsys.sources.errors import SourceError
from agentsys.symbols import SymbolSpec
from worker.agents import bulk
from worker.agents.bang import settle
from worker.agents.base import TRANSIENT, backoff
from worker.agents.price import LIVE_SOURCES, Fetched, due_bars, fetch, latest_bar
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
    # Two deliveries of one task's job may run at once: the task row lock makes the later
    # wait for the earlier to commit, so it sees the targets (and not an emptied stage).
    conn.execute("SELECT 1 FROM task_runs WHERE id = %s FOR UPDATE", (task_id,))
    if conn.execute("SELECT 1 FROM task_targets WHERE task_id = %s LIMIT 1", (task_id,)).fetchone():
        # a second delivery of a job that already committed: just make sure the agents run
        shards = universe.shards_of(conn, [r[0] for r in conn.execute(
            "SELECT symbol FROM task_targets WHERE task_id = %s", (task_id,))])
        changed = settle(conn, [task_id])
        conn.commit()
        _after(ctx, shards, changed)
        return {"symbols": 0, "ticks": 0, "inserted": 0, "repeat": True}
    covered: Stored | None = None
    if kind == "replay":
        got = Fetched(*staged(conn, task_id))
        prepare_replay_symbols(conn, got.names, params)
        replace = bool(params.get("replace"))
    elif kind == "pipeline":
        got, covered = tick(ctx, conn, params)
        replace = False
    elif kind == "backfill":
        got = backfill(ctx, conn, params)
        replace = bool(params.get("replace"))
    else:
        raise InputError(f"task type {kind!r} is not an ingest task")
    if covered is not None:
        record_targets(conn, task_id, covered)
    if not len(got.index):
        if covered is None:
            return _nothing_fetched(ctx, conn, task_id, got.skipped)
        got = Fetched([], *_EMPTY, got.skipped)
    names, index, ts, price = got.names, got.index, got.ts, got.price
    stored = store_prices(conn, names, index, ts, price, replace=replace) if len(index) else NOTHING_STORED
    record_targets(conn, task_id, stored)
    conn.execute("DELETE FROM staged_prices WHERE task_id = %s", (task_id,))
    if got.skipped:
        log.warning("symbols skipped", skipped=len(got.skipped), symbols=[s["symbol"] for s in got.skipped[:20]])
        tasks.set_state(conn, task_id, TaskState.started, result={"skipped": got.skipped})
    changed = settle(conn, [task_id])
    conn.commit()
    committed_at = time.time()
    _after(ctx, stored.shards, changed)
    invalidate(ctx, stored.symbols)
    publish_prices(ctx, -1, names, index, ts, price, committed_at=committed_at)
    summary = {"symbols": len(stored.symbols), "ticks": int(sum(stored.ticks)), "inserted": stored.inserted}
    return {**summary, "skipped": len(got.skipped)} if got.skipped else summary


def _nothing_fetched(ctx: JobContext, conn: psycopg.Connection, task_id: str, skipped: list[dict[str, str]]
                     ) -> dict[str, Any]:
    """No symbol got a price: fail with every reason, or finish at once when none was asked for.

    Without a target no bang job would ever end the task, so it must end here.
    """
    if skipped:
        shown = "; ".join(f"{s['symbol']}: {s['reason']}" for s in skipped[: defaults.ERROR_SAMPLES])
        more = len(skipped) - defaults.ERROR_SAMPLES
        raise SourceError(f"no symbol got a price ({len(skipped)} skipped): {shown}"
                          + (f"; ... and {more} more" if more > 0 else ""))
    done = tasks.set_state(conn, task_id, TaskState.finished, result={"symbols": 0, "ticks": 0, "bangs": 0})
    conn.commit()
    if done is not None:
        tasks.publish_state(ctx.redis, ctx.keys, done)
    return {"symbols": 0, "ticks": 0, "inserted": 0}


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
        periods: dict[str, Any] = dict(zip(("fast", "mid", "slow"), wanted, strict=True)) if given else {}
        universe.add_symbols(conn, [SymbolSpec(symbol=n, source="csv", **periods) for n in new])


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
        _require_known(names, [r[0] for r in rows])
    not_live = [r[0] for r in rows if r[1] not in LIVE_SOURCES]
    if not_live:
        raise InputError(f"symbols without a live source cannot tick: {', '.join(not_live[:20])}")
    when = params.get("ts")
    interval = ctx.settings.price_interval_s
    bar = _us(when) if when else latest_bar(time.time(), interval)
    marks: dict[str, datetime] = dict(conn.execute(
        "SELECT symbol, last_ts FROM progress WHERE agent = 'price' AND symbol = ANY(%s)",
        ([r[0] for r in rows],)).fetchall())
    wanted: list[tuple[str, str]] = []
    bars_each: list[np.ndarray] = []
    covered: list[str] = []
    for symbol, source in rows:
        last = marks.get(symbol)
        last_us = None if last is None else _us(last)
        if last_us is not None and last_us >= bar:
            covered.append(symbol)
            continue
        wanted.append((symbol, source))
        bars_each.append(np.array([bar], dtype=np.int64) if last_us is None
                         else due_bars(last_us, bar, interval, defaults.MAX_CATCHUP_BARS))
    bar_at = datetime.fromtimestamp(bar / 1_000_000, UTC)
    done = Stored(covered, [bar_at] * len(covered), [bar_at] * len(covered), [1] * len(covered), 0, []) \
        if covered else None
    got = fetch(ctx, wanted, bars_each, interval_s=interval) if wanted else Fetched([], *_EMPTY)
    return _with_empty(got, np.array([bar], dtype=np.int64)), done


_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
NOTHING_STORED = Stored([], [], [], [], 0, [])
"""What storing no rows does (a tick whose every symbol was covered)."""


def backfill(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> Fetched:
    """The bars of ``interval_s`` (default PRICE_INTERVAL_S) in [start, end] from each symbol's source."""
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
    wanted = [(r[0], source or r[1]) for r in rows]
    if any(src == "http" for _, src in wanted):
        _check_http_interval(interval)
    return _with_empty(fetch(ctx, wanted, [bars] * len(rows), interval_s=interval), bars)


def _check_http_interval(interval_s: int) -> None:
    """Refuse, before fetching anything, an interval the http source cannot build bars of."""
    from worker.sources import binance

    try:
        binance.kline_interval(interval_s)
    except binance.UnsupportedInterval as error:
        raise InputError(str(error)) from None


def _with_empty(got: Fetched, bars: np.ndarray) -> Fetched:
    """``got`` with every symbol that has no price and no error yet listed as skipped too."""
    present = np.bincount(got.index, minlength=len(got.names)) > 0
    failed = {s["symbol"] for s in got.skipped}
    where = f"at {_iso(bars[0])}" if len(bars) == 1 else f"from {_iso(bars[0])} to {_iso(bars[-1])}"
    empty = [{"symbol": n, "reason": f"the source had no ended bar {where}"}
             for n, has in zip(got.names, present, strict=True) if not has and n not in failed]
    if not empty:
        return got
    return Fetched(got.names, got.index, got.ts, got.price, [*got.skipped, *empty])


def _iso(us: Any) -> str:
    return datetime.fromtimestamp(int(us) / 1_000_000, UTC).isoformat()


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
