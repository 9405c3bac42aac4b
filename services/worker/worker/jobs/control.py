"""Control jobs: the recovery sweep, ``recover``, ``run_agent``, ``cleanup`` and ``reshard`` tasks.

The sweep is what makes the level-triggered design heal by itself: it finds every
shard whose progress lags its inputs (a lost or failed job, a disabled-then-enabled
agent, a crash) and triggers it, first dropping pending keys whose job is gone.
"""

from __future__ import annotations

from typing import Any

import psycopg
from rq.registry import clean_registries

from agentsys import agents, defaults, flags, keys, tasks, triggers
from agentsys import symbols as universe
from agentsys.errors import InputError
from agentsys.logging import get_logger
from agentsys.models import ENDED_STATES
from worker import recovery, runtime
from worker.context import JobContext

log = get_logger("worker.control")

LAG_QUERIES = {a.name: a.lag_query for a in agents.AGENTS if a.lag_query is not None}
"""Shards where an agent's progress is behind its input's (from the registry)."""
SWEPT = list(LAG_QUERIES)
"""The agents the sweep catches up: those whose input is another agent's progress (live
prices have their own tick)."""


def lagging(conn: psycopg.Connection, agent: str, symbols: list[str] | None = None) -> list[int]:
    only = "AND s.symbol = ANY(%s)" if symbols is not None else ""
    query = LAG_QUERIES[agent].format(only=only)
    rows = conn.execute(query, (symbols,) if symbols is not None else None).fetchall()  # type: ignore[arg-type]
    return sorted(int(r[0]) for r in rows)


def _trigger(ctx: JobContext, agent: str, shards: list[int]) -> list[str]:
    """Trigger ``agent`` on these shards, first dropping their pending keys whose job is gone."""
    for shard in shards:
        triggers.repair(ctx.redis, ctx.keys, agent, shard)
    return triggers.trigger_many(ctx.redis, ctx.keys, agent, shards)


def catch_up(ctx: JobContext, conn: psycopg.Connection, names: list[str], symbols: list[str] | None
             ) -> dict[str, list[int]]:
    """Trigger every lagging (agent, shard), repairing stale pending keys first."""
    done: dict[str, list[int]] = {}
    for agent in names:
        if not flags.is_enabled(ctx.redis, ctx.keys, agent):
            continue
        if agent in LAG_QUERIES:
            shards = lagging(conn, agent, symbols)
        else:  # its input is outside (a price source): every shard may be behind
            shards = universe.shards_of(conn, symbols)
        _trigger(ctx, agent, shards)
        if shards:
            done[agent] = shards
    conn.rollback()
    return done


def sweep(shard: int = 0) -> dict[str, Any]:
    """The periodic sweep (no task): every agent in SWEPT, then abandoned tasks.

    Triggered like a shard job (``sweep``, shard 0) so concurrent requests coalesce. It
    runs every minute on every control worker, so it logs only when it triggered something.
    """
    steps = [runtime.logged(), runtime.pending(triggers.SWEEP, shard), runtime.connected]
    return runtime.run(steps, _sweep)


def _sweep(job: runtime.JobRun) -> runtime.Outcome:
    triggered = catch_up(job.ctx, job.conn, SWEPT, None)
    abandoned = recovery.requeue_abandoned_tasks(job.ctx.redis, job.conn, job.ctx.keys)
    result = {"triggered": triggered, "tasks": abandoned}
    if not triggered:
        return runtime.Outcome(result, event=None)
    return runtime.Outcome(result, event="sweep triggered lagging shards", fields={"triggered": triggered})


def _recover(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    agent = params.get("agent")
    chosen = [agent] if agent else SWEPT
    done: dict[str, Any] = {"triggered": catch_up(ctx, conn, chosen, params.get("symbols"))}
    if not agent and params.get("symbols") is None:  # the whole-system sweep also reruns abandoned tasks
        done["tasks"] = recovery.requeue_abandoned_tasks(ctx.redis, conn, ctx.keys)
    return done


def _run_agent(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    agent = params.get("agent")
    if not isinstance(agent, str) or agent not in agents.BY_NAME:
        raise InputError(f"unknown agent {agent!r}")
    shards = params.get("shards")
    if shards is None:
        shards = universe.shards_of(conn)
    enqueued = _trigger(ctx, agent, shards)
    return {"agent": agent, "shards": list(shards), "enqueued": len(enqueued)}


def _reshard(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Renumber the shards to ``shard_size`` symbols each, then run every agent on every new shard.

    The re-shard waits for the shard jobs running now and holds the others off until it commits
    (``agentsys.symbols.reshard``); the triggers after it let level-triggered jobs pick up
    whatever their moved symbols lag, whichever old shard's trigger was still pending.
    """
    summary = universe.reshard(conn, int(params["shard_size"]))
    conn.commit()
    shards = list(range(summary["shards_after"]))
    enqueued = sum(len(_trigger(ctx, agent, shards)) for agent in agents.NAMES)
    log.info("re-shard done", **summary, enqueued=enqueued)
    return {**summary, "enqueued": enqueued}


CLEANUP_BATCH = 5000
"""Rows deleted per transaction by the clean-up, so it never holds long locks."""


def _cleanup(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Delete ended tasks older than ``older_than_days`` (with their targets and staged rows) and
    let RQ drop expired entries from every queue's registries (results expire by their own TTL)."""
    days = int(params.get("older_than_days") or defaults.TASK_HISTORY_DAYS)
    ended = [s.value for s in ENDED_STATES]
    conn.commit()  # the task's own 'started' row is committed; each batch below is its own transaction
    deleted = staged = 0
    while True:
        row = conn.execute(
            "WITH gone AS (DELETE FROM task_runs WHERE id IN (SELECT id FROM task_runs WHERE state = ANY(%s)"
            "   AND COALESCE(ended_at, updated_at) < now() - make_interval(days => %s) LIMIT %s) RETURNING id),"
            " st AS (DELETE FROM staged_prices WHERE task_id IN (SELECT id FROM gone) RETURNING 1)"
            " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM st)",
            (ended, days, CLEANUP_BATCH)).fetchone()
        conn.commit()
        rows, staged_now = (int(row[0]), int(row[1])) if row else (0, 0)
        deleted, staged = deleted + rows, staged + staged_now
        if rows < CLEANUP_BATCH:
            break
    cleaned = []
    for name in keys.worker_queue_order(list(keys.QUEUES)):
        clean_registries(tasks.queue(ctx.redis, name))
        cleaned.append(name)
    log.info("clean-up done", task_runs=deleted, staged_prices=staged, older_than_days=days)
    return {"task_runs": deleted, "staged_prices": staged, "queues": cleaned, "older_than_days": days}


recover = runtime.task_job(_recover)
run_agent = runtime.task_job(_run_agent)
cleanup = runtime.task_job(_cleanup)
reshard = runtime.task_job(_reshard)
