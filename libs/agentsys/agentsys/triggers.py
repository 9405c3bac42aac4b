"""Trigger an agent for a shard: coalesced by a pending key, not by a job id.

``SET pending:A:S <job id> NX`` and enqueue only when the set succeeds; the job deletes
the key before reading its inputs, so a trigger arriving mid-run enqueues exactly one
more run. (Re-enqueuing a fixed job id in RQ pushes it twice or deletes it: rq#1701.)
The key holds the job id so the sweep can tell a live trigger from a lost one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from agentsys import agents, defaults, keys
from agentsys.keys import Keys
from agentsys.tasks import TASK_TYPES, queue

SWEEP = "sweep"
"""The recovery sweep: triggered like a shard job (shard 0) so concurrent requests coalesce."""
AGENT_FUNCS = {**{a.name: a.func for a in agents.AGENTS}, SWEEP: "worker.jobs.control.sweep"}
"""Job function of each triggerable job, by dotted path (callers never import worker code)."""
QUEUE_OF = {**{a.name: a.queue for a in agents.AGENTS}, SWEEP: keys.CONTROL_QUEUE}


def job_functions() -> list[str]:
    """Every job function of the system: the triggerable ones, then each task type's (no repeats)."""
    return list(dict.fromkeys([*AGENT_FUNCS.values(), *(t.func for t in TASK_TYPES.values())]))


def job_modules() -> list[str]:
    """The modules of :func:`job_functions` (what workers preload before forking)."""
    return list(dict.fromkeys(f.rpartition(".")[0] for f in job_functions()))

LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}

_DELETE_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def trigger_many(redis: Redis, k: Keys, agent: str, shards: Iterable[int], *, low: bool = False) -> list[str]:
    """Trigger ``agent`` for each shard; returns the ids of the jobs actually enqueued."""
    if agent not in AGENT_FUNCS:
        raise ValueError(f"unknown agent {agent!r}; choose from {', '.join(AGENT_FUNCS)}")
    shards = [int(s) for s in shards]
    if not shards:
        return []
    ids = [uuid.uuid4().hex for _ in shards]
    with redis.pipeline(transaction=False) as pipe:
        for shard, job_id in zip(shards, ids, strict=True):
            pipe.set(k.pending(agent, shard), job_id, nx=True, ex=defaults.PENDING_TTL)
        won = pipe.execute()
    todo = [(s, i) for s, i, ok in zip(shards, ids, won, strict=True) if ok]
    if not todo:
        return []
    q = queue(redis, keys.low(QUEUE_OF[agent]) if low else QUEUE_OF[agent])
    data = [
        q.prepare_data(
            AGENT_FUNCS[agent],
            args=(shard,),
            job_id=job_id,
            timeout=defaults.JOB_TIMEOUT,
            result_ttl=defaults.AGENT_RESULT_TTL,
            failure_ttl=defaults.FAILURE_TTL,
            description=f"{agent} shard {shard}",
        )
        for shard, job_id in todo
    ]
    try:
        with redis.pipeline() as pipe:
            q.enqueue_many(data, pipeline=pipe)
            pipe.execute()
    except Exception:
        for shard, job_id in todo:  # let the next trigger (or the sweep) try again
            redis.eval(_DELETE_IF_EQUAL, 1, k.pending(agent, shard), job_id)
        raise
    return [job_id for _, job_id in todo]


def trigger_downstream(redis: Redis, k: Keys, agent: str, shards: Iterable[int]) -> list[str]:
    """Trigger the agents that read what ``agent`` just committed (none after the last one)."""
    shards = list(shards)
    return [job for after in agents.downstream(agent) for job in trigger_many(redis, k, after, shards)]


def trigger(redis: Redis, k: Keys, agent: str, shard: int, *, low: bool = False) -> str | None:
    ids = trigger_many(redis, k, agent, [shard], low=low)
    return ids[0] if ids else None


LOST_AFTER_S = defaults.LOST_AFTER_S


def is_lost(redis: Redis, job: Job, *, after_s: float | None = None) -> bool:
    """True for a job RQ says is queued but no worker can ever get: popped by a worker that
    died before registering it (RQ's BLPOP window, rq#580 and rq#1716)."""
    enqueued = job.enqueued_at
    if enqueued is None:
        return False
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=UTC)
    if (datetime.now(UTC) - enqueued).total_seconds() < (LOST_AFTER_S if after_s is None else after_s):
        return False
    key = Queue.redis_queue_namespace_prefix + job.origin
    with redis.pipeline(transaction=False) as pipe:
        pipe.lpos(key, job.id)
        pipe.lpos(key + ":intermediate", job.id)
        found = pipe.execute()
    return all(position is None for position in found)


def repair(redis: Redis, k: Keys, agent: str, shard: int) -> bool:
    """Drop a pending key whose job is gone (lost in RQ's pop window, failed, expired).

    Returns True when the key was stale and removed.
    """
    key = k.pending(agent, shard)
    value = redis.get(key)
    if value is None:
        return False
    job_id = value.decode() if isinstance(value, bytes) else str(value)
    status: JobStatus | None
    try:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
        status = job.get_status(refresh=False)
        if status == JobStatus.QUEUED and is_lost(redis, job):
            status = None
    except Exception:
        status = None
    if status in LIVE_STATES:
        return False
    return bool(redis.eval(_DELETE_IF_EQUAL, 1, key, job_id))
