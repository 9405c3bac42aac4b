"""What RQ and our workers say about queues and workers: the one status layer.

The orchestrator's ``/queues``, ``/workers``, ``/agents`` and ``/metrics``, ``agentctl
status`` and the worker's stats hash all go through here, so a field means the same
everywhere. Counts come from RQ's own keys in one pipelined round trip (raw
``LLEN``/``ZCARD``: RQ's ``registry.count`` would also run a clean-up, which a read must
not). Worker resources come from the stats hash each worker writes next to its heartbeat
(``Keys.worker_stats``, the fields of :data:`STAT_FIELDS`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from redis import Redis
from rq import Queue, Worker
from rq.registry import (
    BaseRegistry,
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from agentsys import flags, queries, schedules
from agentsys.keys import ALL_QUEUES, Keys
from agentsys.timefmt import iso, iso_s

__all__ = ["ALL_QUEUES", "REGISTRIES", "STAT_FIELDS", "breakers", "overview", "queue_key", "queue_stats",
           "registry_key", "schedule_stats", "workers", "workers_by_queue"]

REGISTRIES: dict[str, type[BaseRegistry]] = {
    "started": StartedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}
"""RQ's registries per queue, by the job state they hold."""
STAT_FIELDS: dict[str, type] = {"rss_bytes": int, "cpu_seconds": float, "jobs_done": int, "failures": int,
                                "last_job_ms": float, "at": float}
"""Fields of a worker's stats hash (the heartbeat message's numbers), with their types."""


def registry_key(kind: str, queue: str) -> str:
    """RQ's key of one registry of one queue."""
    return str(REGISTRIES[kind](queue, connection=None).key)  # the key needs no client


def queue_key(queue: str) -> str:
    """RQ's list of the jobs waiting in ``queue``."""
    return Queue.redis_queue_namespace_prefix + queue


def queue_stats(redis: Redis) -> list[dict[str, Any]]:
    """Depth and registry counts of every queue."""
    with redis.pipeline(transaction=False) as pipe:
        for name in ALL_QUEUES:
            pipe.llen(queue_key(name))
            for kind in REGISTRIES:
                pipe.zcard(registry_key(kind, name))
        counts = iter(pipe.execute())
    return [{"name": name, "depth": int(next(counts)), **{kind: int(next(counts)) for kind in REGISTRIES}}
            for name in ALL_QUEUES]


def workers_by_queue(redis: Redis, queues: list[str]) -> dict[str, list[str]]:
    """Names of the workers listening on each queue."""
    prefix = Worker.redis_worker_namespace_prefix
    with redis.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.smembers(WORKERS_BY_QUEUE_KEY % name)
        members = pipe.execute()
    return {name: sorted(m.decode().removeprefix(prefix) for m in found)
            for name, found in zip(queues, members, strict=True)}


def breakers(redis: Redis, k: Keys, sources: tuple[str, ...]) -> list[dict[str, Any]]:
    """Circuit-breaker state of each source (``closed`` when none was ever written)."""
    with redis.pipeline(transaction=False) as pipe:
        for source in sources:
            pipe.hgetall(k.breaker(source))
        found = pipe.execute()
    out = []
    for source, raw in zip(sources, found, strict=True):
        data = {f.decode(): v.decode() for f, v in raw.items()}
        out.append({"source": source, "state": data.get("state", "closed"),
                    "failures": _number(data.get("failures"), int) or 0,
                    "opened_at": _number(data.get("opened_at"), float)})
    return out


def _number(value: str | None, kind: type) -> Any:
    try:
        return kind(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def workers(redis: Redis, k: Keys) -> list[dict[str, Any]]:
    """Every registered worker, by name: RQ's view merged with its latest stats.

    (Building RQ's Worker objects gives our client a socket timeout of a few minutes where
    it had none; harmless for a reader that issues no blocking commands.)
    """
    found = sorted(Worker.all(connection=redis, serializer=JSONSerializer), key=lambda w: w.name)
    with redis.pipeline(transaction=False) as pipe:
        for worker in found:
            pipe.hgetall(k.worker_stats(worker.name))
        stats = pipe.execute()
    out = []
    for worker, raw in zip(found, stats, strict=True):
        data = {f.decode(): v.decode() for f, v in raw.items()}
        extra = {name: _number(data.get(name), kind) for name, kind in STAT_FIELDS.items()}
        out.append({
            "name": worker.name,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "queues": worker.queue_names(),
            "state": str(worker.get_state()),
            "current_job": worker.get_current_job_id(),
            "birth": _utc(worker.birth_date),
            "last_heartbeat": _utc(worker.last_heartbeat),
            "successful_jobs": worker.successful_job_count,
            "failed_jobs": worker.failed_job_count,
            "working_seconds": round(float(worker.total_working_time), 3),
            "rss_bytes": extra["rss_bytes"],
            "cpu_seconds": extra["cpu_seconds"],
            "last_job_ms": extra["last_job_ms"],
            "stats_at": datetime.fromtimestamp(extra["at"], UTC) if extra["at"] else None,
        })
    return out


def _worker_line(worker: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A worker as the status screen shows it: the heartbeat as an age."""
    beat = worker["last_heartbeat"]
    return {
        "name": worker["name"], "pid": worker["pid"], "hostname": worker["hostname"], "queues": worker["queues"],
        "state": worker["state"], "current_job": worker["current_job"],
        "heartbeat_age_s": round((now - beat).total_seconds(), 1) if beat else None,
        "jobs_done": worker["successful_jobs"], "failures": worker["failed_jobs"], "rss_bytes": worker["rss_bytes"],
        "cpu_seconds": worker["cpu_seconds"], "last_job_ms": worker["last_job_ms"],
    }


def schedule_stats(redis: Redis, k: Keys) -> dict[str, Any]:
    """The named schedules with their last fired tick, and the leading scheduler."""
    found = schedules.list_schedules(redis, k)
    lasts = redis.mget([k.schedule_last(s.name) for s in found]) if found else []
    leader = redis.get(k.scheduler_lock())
    items = []
    for schedule, last in zip(found, lasts, strict=True):
        items.append({
            "name": schedule.name, "type": schedule.type, "params": schedule.params, "enabled": schedule.enabled,
            "every": f"{schedule.interval_s}s" if schedule.interval_s else f"{schedule.cron} ({schedule.timezone})",
            "market_hours": schedule.calendar is not None, "priority": schedule.priority.value,
            "last_tick": iso_s(int(last)) if last is not None else None,
        })
    return {"leader": leader.decode() if isinstance(leader, bytes) else leader, "items": items}


def overview(redis: Redis, conn: psycopg.Connection | None, k: Keys, *, bangs: int = 10) -> dict[str, Any]:
    """Queues, workers, schedules, flags and the last bangs, as JSON-able values (``agentctl status``).

    ``conn`` may be None (PostgreSQL unreachable): the bangs are then left out.
    """
    now = datetime.now(UTC)
    out: dict[str, Any] = {
        "at": iso(now),
        "queues": queue_stats(redis),
        "workers": [_worker_line(w, now) for w in workers(redis, k)],
        "schedules": schedule_stats(redis, k),
        "flags": {"agents": flags.agent_flags(redis, k), "disabled_symbols": sorted(flags.disabled_symbols(redis, k))},
        "bangs": None,
    }
    if conn is not None:
        out["bangs"] = queries.events(conn, limit=bangs)
        conn.rollback()
    return out
