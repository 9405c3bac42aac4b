"""What every shard job does around its agent's work.

The pending key is deleted before any input is read (so a trigger arriving mid-run
enqueues one more run), the runtime flag is read at job start, transient Redis and
PostgreSQL errors come back as a retry with exponential backoff and jitter, and one log
line per job carries its duration.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis.exceptions
import structlog
from rq import Retry

from agentsys import defaults, flags
from agentsys.logging import get_logger
from worker.context import JobContext, current

log = get_logger("worker.agent")

TRANSIENT = (psycopg.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Errors worth retrying: the server went away or timed out, the input was fine."""

LOCK_CLASS = {"price": 1, "indicator": 2, "bang": 3}
"""First key of the per-shard advisory lock, per agent."""


def backoff(*, retries: int = defaults.RETRY_MAX, base: float = defaults.RETRY_BASE,
            cap: float = defaults.RETRY_CAP) -> list[int]:
    """Retry intervals in whole seconds: doubling from ``base``, capped, each with +-50% jitter."""
    return [max(1, round(min(cap, base * 2**i) * random.uniform(0.5, 1.5))) for i in range(retries)]


def lock_shard(conn: psycopg.Connection, agent: str, shard: int) -> None:
    """Serialise runs of one agent on one shard; released at commit or rollback."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS[agent], shard))


Body = Callable[[JobContext, psycopg.Connection, int], dict[str, Any]]


def shard_job(agent: str) -> Callable[[Body], Callable[[int], Any]]:
    def wrap(body: Body) -> Callable[[int], Any]:
        @functools.wraps(body)
        def run(shard: int) -> Any:
            if not isinstance(shard, int) or isinstance(shard, bool) or shard < 0:
                raise TypeError(f"shard must be a non-negative integer, not {shard!r}")
            ctx = current()
            begin = time.perf_counter()
            with structlog.contextvars.bound_contextvars(agent=agent, shard=shard, job_id=ctx.job_id):
                ctx.redis.delete(ctx.keys.pending(agent, shard))
                if not flags.is_enabled(ctx.redis, ctx.keys, agent):
                    log.info("agent disabled; nothing done", duration_ms=_ms(begin))
                    return {"skipped": "agent disabled"}
                try:
                    with ctx.connect_db() as conn:
                        result = body(ctx, conn, shard)
                except TRANSIENT as error:
                    log.warning("transient error; will retry", error=str(error).splitlines()[0] if str(error) else "",
                                duration_ms=_ms(begin))
                    return Retry(max=defaults.RETRY_MAX, interval=backoff())
                log.info("job finished", duration_ms=_ms(begin), **result)
                return result

        return run

    return wrap


def _ms(begin: float) -> float:
    return round((time.perf_counter() - begin) * 1000, 3)


def publish(ctx: JobContext, channel: str, message: dict[str, Any]) -> None:
    """Publish after commit; a lost live message is repaired by the client's backfill."""
    try:
        ctx.redis.publish(channel, json.dumps(message, default=str, allow_nan=False))
    except TRANSIENT as error:
        log.warning("publish failed", channel=channel, error=str(error))
