"""Control jobs: the recovery sweep, ``recover`` and ``run_agent`` tasks.

The sweep is what makes the level-triggered design heal by itself: it finds every
shard whose progress lags its inputs (a lost or failed job, a disabled-then-enabled
agent, a crash) and triggers it, first dropping pending keys whose job is gone.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from agentsys import flags, triggers
from agentsys import symbols as universe
from agentsys.errors import InputError
from agentsys.logging import get_logger
from worker.context import JobContext, current, task_job

log = get_logger("worker.control")

LAG_QUERIES = {
    "indicator": """
        SELECT DISTINCT s.shard FROM symbols s
        JOIN progress i ON i.agent = 'price' AND i.symbol = s.symbol
        LEFT JOIN progress o ON o.agent = 'indicator' AND o.symbol = s.symbol
        WHERE (o.last_ts IS NULL OR i.last_ts > o.last_ts) {only}
    """,
    "bang": """
        SELECT DISTINCT s.shard FROM symbols s
        JOIN progress i ON i.agent = 'indicator' AND i.symbol = s.symbol
        LEFT JOIN progress o ON o.agent = 'bang' AND o.symbol = s.symbol
        WHERE (o.last_ts IS NULL OR i.last_ts > o.last_ts) {only}
    """,
}
"""Shards where an agent's progress is behind its input's."""


def lagging(conn: psycopg.Connection, agent: str, symbols: list[str] | None = None) -> list[int]:
    only = "AND s.symbol = ANY(%s)" if symbols is not None else ""
    query = LAG_QUERIES[agent].format(only=only)
    rows = conn.execute(query, (symbols,) if symbols is not None else None).fetchall()  # type: ignore[arg-type]
    return sorted(int(r[0]) for r in rows)


def catch_up(ctx: JobContext, conn: psycopg.Connection, agents: list[str], symbols: list[str] | None
             ) -> dict[str, list[int]]:
    """Trigger every lagging (agent, shard), repairing stale pending keys first."""
    done: dict[str, list[int]] = {}
    for agent in agents:
        if not flags.is_enabled(ctx.redis, ctx.keys, agent):
            continue
        if agent == "price":
            shards = universe.shards_of(conn, symbols)
        else:
            shards = lagging(conn, agent, symbols)
        for shard in shards:
            triggers.repair(ctx.redis, ctx.keys, agent, shard)
        triggers.trigger_many(ctx.redis, ctx.keys, agent, shards)
        if shards:
            done[agent] = shards
    conn.rollback()
    return done


def sweep(shard: int = 0) -> dict[str, Any]:
    """The periodic sweep (no task): indicator and bang; live prices have their own tick.

    Triggered like a shard job (``sweep``, shard 0) so concurrent requests coalesce.
    """
    ctx = current()
    begin = time.perf_counter()
    ctx.redis.delete(ctx.keys.pending("sweep", shard))
    with ctx.connect_db() as conn:
        triggered = catch_up(ctx, conn, ["indicator", "bang"], None)
    if triggered:
        log.info("sweep triggered lagging shards", triggered=triggered,
                 duration_ms=round((time.perf_counter() - begin) * 1000, 3))
    return {"triggered": triggered}


def _recover(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    agent = params.get("agent")
    agents = [agent] if agent else ["indicator", "bang"]
    return {"triggered": catch_up(ctx, conn, agents, params.get("symbols"))}


def _run_agent(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    agent = params.get("agent")
    if agent not in ("price", "indicator", "bang"):
        raise InputError(f"unknown agent {agent!r}")
    shards = params.get("shards")
    if shards is None:
        shards = universe.shards_of(conn)
    for shard in shards:
        triggers.repair(ctx.redis, ctx.keys, agent, shard)
    enqueued = triggers.trigger_many(ctx.redis, ctx.keys, agent, shards)
    return {"agent": agent, "shards": list(shards), "enqueued": len(enqueued)}


recover = task_job(_recover)
run_agent = task_job(_run_agent)
