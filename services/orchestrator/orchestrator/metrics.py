"""Prometheus metrics of the whole system, read at scrape time.

- queues and jobs: depth and RQ registry counts per queue (``agentsys_queue_depth``,
  ``agentsys_jobs{state}``);
- job durations per agent (``agentsys_job_duration_seconds{agent,status}``): RQ keeps each
  finished or failed job, with its ``started_at``/``ended_at``, in the queue's registry for
  its result TTL. At every scrape the jobs that entered those registries since the last
  scrape are observed once. Jobs that expire between two scrapes (scrape interval longer
  than the 300 s TTL of shard jobs) are not seen; several API replicas each count every
  job, so aggregate with ``max``, not ``sum``;
- agents: flag, breaker state; workers: RSS, CPU, jobs (RQ's counters and the stats hash
  the worker writes with its heartbeat); ``agentsys_bangs_total`` (rows in bang_events);
- HTTP request counts and latency (:mod:`orchestrator.middleware`).

A part that cannot be read (Redis or PostgreSQL down) is skipped and reported in
``agentsys_scrape_error{part}``; the scrape itself still answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from rq.job import Job
from rq.utils import utcparse

from agentsys import agents, db, defaults, flags, status
from agentsys.keys import Keys
from agentsys.logging import get_logger

log = get_logger("orchestrator.metrics")

JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
"""Job duration buckets, in seconds."""
MAX_NEW_JOBS = 20_000
"""Jobs observed at most per registry per scrape (bounds a scrape after a long pause)."""
BREAKER_STATES = ("closed", "half_open", "open")


class JobDurations:
    """A histogram fed from RQ's finished and failed registries (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram("agentsys_job_duration_seconds", "RQ job run time, per agent (queue)",
                                   ["agent", "status"], buckets=JOB_BUCKETS, registry=registry)
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def update(self, redis: Redis) -> None:
        with self._lock:
            plan = [(q, outcome, status.registry_key(outcome, q)) for q in status.ALL_QUEUES
                    for outcome in ("finished", "failed")]
            with redis.pipeline(transaction=False) as pipe:
                for _, _, key in plan:
                    pipe.zrange(key, -MAX_NEW_JOBS, -1)
                members = pipe.execute()
            todo: list[tuple[str, str, str]] = []
            for (queue, outcome, key), ids in zip(plan, members, strict=True):
                now = {i.decode() for i in ids}
                todo += [(queue.removesuffix(".low"), outcome, i) for i in now - self._seen.get(key, set())]
                self._seen[key] = now
            with redis.pipeline(transaction=False) as pipe:
                for _, _, job_id in todo:
                    pipe.hmget(Job.key_for(job_id), "started_at", "ended_at")
                times = pipe.execute()
            for (agent, outcome, _), (started, ended) in zip(todo, times, strict=True):
                if started and ended:
                    seconds = (utcparse(ended.decode()) - utcparse(started.decode())).total_seconds()
                    self.histogram.labels(agent, outcome).observe(max(0.0, seconds))


class SystemCollector:
    """Gauges and counters read from Redis and PostgreSQL at each scrape."""

    def __init__(self, redis: Redis, k: Keys, database_url: str) -> None:
        self.redis, self.keys, self.database_url = redis, k, database_url

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("agentsys_scrape_error", "1 when a part of the scrape failed", labels=["part"])
        for part, read in (("queues", self._queues), ("agents", self._agents), ("workers", self._workers),
                           ("bangs", self._bangs)):
            try:
                found = list(read())
            except Exception as error:  # one unreadable part must not lose the others
                log.warning("metrics part failed", part=part, error=f"{type(error).__name__}: {error}"[:200])
                errors.add_metric([part], 1)
                continue
            errors.add_metric([part], 0)
            yield from found
        yield errors

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("agentsys_queue_depth", "jobs waiting in the queue", labels=["queue"])
        jobs = GaugeMetricFamily("agentsys_jobs", "jobs in RQ's registries by state", labels=["queue", "state"])
        for row in status.queue_stats(self.redis):
            depth.add_metric([row["name"]], row["depth"])
            jobs.add_metric([row["name"], "queued"], row["depth"])
            for kind in status.REGISTRIES:
                jobs.add_metric([row["name"], kind], row[kind])
        yield depth
        yield jobs

    def _agents(self) -> Iterator[Metric]:
        enabled = GaugeMetricFamily("agentsys_agent_enabled", "1 when the agent's flag is on", labels=["agent"])
        for agent, on in flags.agent_flags(self.redis, self.keys).items():
            enabled.add_metric([agent], 1 if on else 0)
        yield enabled
        breaker = GaugeMetricFamily("agentsys_breaker_state", "1 for the current breaker state of a source",
                                    labels=["source", "state"])
        for agent in agents.AGENTS:
            for row in status.breakers(self.redis, self.keys, agent.breaker_sources):
                for state in BREAKER_STATES:
                    breaker.add_metric([row["source"], state], 1 if row["state"] == state else 0)
        yield breaker

    def _workers(self) -> Iterator[Metric]:
        found = status.workers(self.redis, self.keys)
        count = GaugeMetricFamily("agentsys_workers", "registered workers")
        count.add_metric([], len(found))
        yield count
        rss = GaugeMetricFamily("agentsys_worker_rss_bytes", "worker and job process RSS", labels=["worker"])
        cpu = CounterMetricFamily("agentsys_worker_cpu_seconds", "worker and job process CPU", labels=["worker"])
        jobs = CounterMetricFamily("agentsys_worker_jobs", "jobs run by the worker", labels=["worker", "outcome"])
        age = GaugeMetricFamily("agentsys_worker_heartbeat_age_seconds", "seconds since the last heartbeat",
                                labels=["worker"])
        now = time.time()
        for w in found:
            name = w["name"]
            _add(rss, [name], w["rss_bytes"])
            _add(cpu, [name], w["cpu_seconds"])
            jobs.add_metric([name, "successful"], w["successful_jobs"])
            jobs.add_metric([name, "failed"], w["failed_jobs"])
            if w["last_heartbeat"] is not None:
                age.add_metric([name], max(0.0, now - w["last_heartbeat"].timestamp()))
        yield from (rss, cpu, jobs, age)

    def _bangs(self) -> Iterator[Metric]:
        with db.pool(self.database_url).connection(timeout=defaults.PG_PROBE_TIMEOUT) as conn:
            conn.execute("SET LOCAL statement_timeout = 5000")
            row = conn.execute("SELECT count(*) FROM bang_events").fetchone()
        bangs = CounterMetricFamily("agentsys_bangs", "bang events recorded (rows in bang_events)")
        bangs.add_metric([], int(row[0]) if row else 0)
        yield bangs


def _add(family: Any, labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)


def build(redis: Redis, k: Keys, database_url: str) -> tuple[CollectorRegistry, Callable[[], None]]:
    """A registry of its own (one per app, so tests can build many) and its pre-scrape hook."""
    registry = CollectorRegistry()
    durations = JobDurations(registry)
    registry.register(SystemCollector(redis, k, database_url))

    def before_scrape() -> None:
        try:
            durations.update(redis)
        except Exception as error:  # the other parts still answer; the collector reports Redis
            log.warning("job durations not updated", error=f"{type(error).__name__}: {error}"[:200])

    return registry, before_scrape
