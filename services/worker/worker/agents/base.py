"""What the agents share around their work: the shard lock and publishing after commit.

The job function itself (pending key, flag, retries, the job's log line) comes from
``worker.runtime.shard_job``; ``TRANSIENT`` and ``backoff`` are re-exported from there, the
shard lock (``lock_shard``, ``LOCK_CLASS``) from ``agentsys.locks``.
"""

from __future__ import annotations

import json
from typing import Any

from agentsys.locks import LOCK_CLASS, lock_shard
from agentsys.logging import get_logger
from worker.context import JobContext
from worker.runtime import TRANSIENT, backoff, shard_job

__all__ = ["LOCK_CLASS", "TRANSIENT", "backoff", "lock_shard", "publish", "shard_job"]

log = get_logger("worker.agent")


def publish(ctx: JobContext, channel: str, message: dict[str, Any]) -> None:
    """Publish after commit; a lost live message is repaired by the client's backfill."""
    try:
        ctx.redis.publish(channel, json.dumps(message, default=str, allow_nan=False))
    except TRANSIENT as error:
        log.warning("publish failed", channel=channel, error=str(error))
