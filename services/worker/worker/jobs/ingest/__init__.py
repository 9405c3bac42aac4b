"""Composite tasks (``pipeline``, ``replay``, ``backfill``): ingest prices, record targets.

The job never waits for the agents: it stores the prices, records per symbol the ts the
bang agent must reach (``worker.lifecycle``), and triggers the indicator agent. The bang
job that reaches the last target finishes the task in its own transaction. Where the
prices come from is each task type's own module (``replay``, ``pipeline``, ``backfill``);
this one stores them, the same for all.

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
from collections.abc import Callable
from typing import Any

import psycopg

from agentsys import agents, defaults, triggers
from agentsys import symbols as universe
from agentsys.errors import InputError
from agentsys.logging import get_logger
from agentsys.models import TaskRun
from agentsys.sources.errors import SourceError
from worker import lifecycle, runtime
from worker.agents.publishing import invalidate, publish_prices
from worker.agents.store import Stored, store_prices
from worker.context import JobContext
from worker.jobs.ingest import backfill, pipeline, replay
from worker.jobs.ingest.common import EMPTY, Input
from worker.sources.fetch import Fetched

log = get_logger("worker.ingest")

AGENT = agents.first().name
"""Ingest is the first agent's work (the price agent's, on its queue), logged as its."""
INPUTS: dict[str, Callable[[JobContext, psycopg.Connection, str, dict[str, Any]], Input]] = {
    "replay": replay.prices, "pipeline": pipeline.prices, "backfill": backfill.prices,
}
"""Where each ingest task type's prices come from."""
NOTHING_STORED = Stored([], [], [], [], 0, [])
"""What storing no rows does (a tick whose every symbol was covered)."""


def run(task_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    steps = [runtime.logged(_summary), runtime.retried, runtime.connected, runtime.started(skip_ended=True)]
    return runtime.run(steps, _ingest_task, task_id=task_id, agent=AGENT)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "shards"}


def _ingest_task(job: runtime.JobRun) -> dict[str, Any]:
    conn, task = job.conn, job.task
    assert task is not None  # runtime.started(skip_ended=True) read it
    try:
        return ingest(job.ctx, conn, task.type, task.id, task.params)
    except InputError:
        conn.rollback()
        conn.execute("DELETE FROM staged_prices WHERE task_id = %s", (task.id,))
        conn.commit()
        raise


def ingest(ctx: JobContext, conn: psycopg.Connection, kind: str, task_id: str, params: dict[str, Any]
           ) -> dict[str, Any]:
    recorded = lifecycle.lock(conn, task_id)
    if recorded is not None:
        # a second delivery of a job that already committed: just make sure the agents run
        shards = universe.shards_of(conn, recorded)
        changed = lifecycle.settle(conn, [task_id])
        conn.commit()
        _after(ctx, shards, changed)
        return {"symbols": 0, "ticks": 0, "inserted": 0, "repeat": True}
    source = INPUTS.get(kind)
    if source is None:
        raise InputError(f"task type {kind!r} is not an ingest task")
    given = source(ctx, conn, task_id, params)
    got, covered = given.got, given.covered
    if covered is not None:
        lifecycle.record_targets(conn, task_id, covered)
    if not len(got.index):
        if covered is None:
            return _nothing_fetched(ctx, conn, task_id, got.skipped)
        got = Fetched([], *EMPTY, got.skipped)
    names, index, ts, price = got.names, got.index, got.ts, got.price
    stored = store_prices(conn, names, index, ts, price, replace=given.replace) if len(index) else NOTHING_STORED
    lifecycle.record_targets(conn, task_id, stored)
    conn.execute("DELETE FROM staged_prices WHERE task_id = %s", (task_id,))
    if got.skipped:
        log.warning("symbols skipped", skipped=len(got.skipped), symbols=[s["symbol"] for s in got.skipped[:20]])
        lifecycle.record_skipped(conn, task_id, got.skipped)
    changed = lifecycle.settle(conn, [task_id])
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
    done = lifecycle.finish_without_targets(conn, task_id)
    conn.commit()
    lifecycle.announce(ctx, [done] if done is not None else [])
    return {"symbols": 0, "ticks": 0, "inserted": 0}


def _after(ctx: JobContext, shards: list[int], changed: list[TaskRun]) -> None:
    triggers.trigger_downstream(ctx.redis, ctx.keys, AGENT, shards)
    lifecycle.announce(ctx, changed)
