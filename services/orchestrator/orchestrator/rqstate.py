"""What RQ and our workers say about queues and workers: what ``celery inspect`` shows.

Counts come from RQ's own keys in one pipelined round trip (raw ``LLEN``/``ZCARD``: RQ's
``registry.count`` would also run a clean-up, which a GET must not). Worker resources
come from the stats hash each worker writes next to its heartbeat (``Keys.worker_stats``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from agentsys import agents
from agentsys.keys import ALL_QUEUES, Keys
from agentsys.ops import REGISTRIES

__all__ = ["ALL_QUEUES", "REGISTRIES"]
BREAKER_SOURCES = {a.name: a.breaker_sources for a in agents.AGENTS if a.breaker_sources}
"""Price sources with a circuit breaker, per agent."""
STAT_FIELDS = {"rss_bytes": int, "cpu_seconds": float, "jobs_done": int, "failures": int, "last_job_ms": float,
               "at": float}
"""Fields of a worker's stats hash (the heartbeat message's numbers)."""


def registry_key(kind: str, queue: str) -> str:
    return REGISTRIES[kind](queue, connection=None).key  # type: ignore[arg-type]


def queue_key(queue: str) -> str:
    return Queue.redis_queue_namespace_prefix + queue


def queue_stats(redis: Redis) -> list[dict[str, Any]]:
    """Depth and registry counts of every queue."""
    with redis.pipeline(transaction=False) as pipe:
        for name in ALL_QUEUES:
            pipe.llen(queue_key(name))
            for kind in REGISTRIES:
                pipe.zcard(registry_key(kind, name))
        counts = iter(pipe.execute())
    found = []
    for name in ALL_QUEUES:
        row: dict[str, Any] = {"name": name, "depth": int(next(counts))}
        row.update({kind: int(next(counts)) for kind in REGISTRIES})
        found.append(row)
    return found


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
    """Every registered worker: RQ's view merged with its latest stats.

    (Building RQ's Worker objects gives our client a socket timeout of a few minutes where
    it had none; harmless for an API that issues no blocking commands.)
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
