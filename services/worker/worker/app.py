"""The worker class: RQ's forking worker, JSON only, with our heartbeats and task records.

Forking per job keeps hard timeouts and isolates a crashing job; shard jobs run for
hundreds of milliseconds, so the ~17 ms fork is cheap. Usable straight from RQ's CLI:
``rq worker -w worker.app.AgentWorker -S json price indicator bang control``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import time
from typing import Any

import psutil
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer, resolve_serializer
from rq.worker.base import BaseWorker

from agentsys import db, defaults, keys, tasks, triggers
from agentsys.errors import ConfigError
from agentsys.keys import Keys
from agentsys.logging import configure_logging, get_logger, is_configured
from agentsys.models import TaskState
from agentsys.status import STAT_FIELDS
from worker import guards, recovery
from worker.settings import WorkerSettings, get_settings

log = get_logger("worker")



def preload(modules: str) -> None:
    """Import job modules once in the worker, so each forked job process starts warm.

    Without it every job process imports numpy and the agents again (~100 ms of CPU).
    """
    for name in filter(None, (m.strip() for m in modules.split(","))):
        importlib.import_module(name)


def default_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


class AgentWorkerMixin(BaseWorker):
    """Our additions to an RQ worker class: JSON only, heartbeats with resources, task records."""

    configure_logs = True
    """Whether building a worker sets up the process's logging (an entry point's job)."""

    def __init__(self, queues: Any, *args: Any, settings: WorkerSettings | None = None, **kwargs: Any) -> None:
        self.settings = settings or get_settings()
        if self.configure_logs and not is_configured():
            configure_logging("worker", level=self.settings.log_level, fmt=self.settings.log_format)
        serializer = resolve_serializer(kwargs.pop("serializer", None) or JSONSerializer)
        if serializer is not JSONSerializer:
            raise ConfigError("workers accept JSON jobs only (pickle would let Redis writers run code)")
        kwargs.setdefault("name", self.settings.worker_name or default_name())
        kwargs["worker_ttl"] = kwargs.get("worker_ttl") or self.settings.worker_ttl
        kwargs.pop("default_worker_ttl", None)
        if kwargs.get("job_monitoring_interval") in (None, 30):
            kwargs["job_monitoring_interval"] = self.settings.job_monitoring_interval
        if kwargs.get("maintenance_interval") in (None, 600):
            kwargs["maintenance_interval"] = self.settings.maintenance_interval
        kwargs["serializer"] = JSONSerializer
        super().__init__(queues, *args, **kwargs)
        preload(self.settings.worker_preload)
        self.keys = Keys(self.settings.key_prefix)
        self.last_job_ms: float | None = None
        self._published = 0.0
        self._process = psutil.Process()
        self._execution: Any = None

    # ---- running jobs -------------------------------------------------------------
    def execute_job(self, job: Job, queue: Queue) -> None:
        reason = guards.refusal(job, max_bytes=self.settings.worker_max_job_bytes,
                                preload=self.settings.worker_preload)
        if reason is not None:  # before forking: a bad payload never reaches job code
            log.error("job refused", job_id=job.id, queue=queue.name, reason=reason)
            self.handle_job_failure(job, queue, exc_string=f"{guards.REFUSED}: {reason}")
            return
        started = time.perf_counter()
        interrupted = False
        try:
            try:
                super().execute_job(job, queue)
            except guards.REDIS_DOWN as error:
                interrupted = True
                log.warning("Redis unreachable around a job; waiting for it", job_id=job.id, error=str(error))
                guards.wait_for_redis(self.connection)
            with guards.riding_out(f"job {job.id}"):
                status = job.get_status(refresh=True)
                if status == JobStatus.STARTED:
                    # its process ended without recording how (Redis was unreachable): a crash
                    self.handle_job_failure(job, queue, exc_string=f"{guards.HORSE_DIED}: it ended without"
                                            " recording its outcome (Redis unreachable?)", execution=self._execution)
                elif interrupted and status == JobStatus.QUEUED and guards.requeue_dropped(self.connection, job):
                    log.warning("job put back on its queue: Redis went away before it started", job_id=job.id)
        finally:
            self.last_job_ms = round((time.perf_counter() - started) * 1000, 3)

    def prepare_execution(self, job: Job) -> Any:
        self._execution = super().prepare_execution(job)
        return self._execution

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None,
                           exc_string: str = "", execution: Any = None) -> None:
        stopped = self._stopped_job_id == job.id
        if exc_string.startswith(guards.HORSE_DIED) and not stopped:
            guards.rerun_after_crash(job, limit=self.settings.worker_crash_retries)
        retrying = job.should_retry and not stopped
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if retrying:
            state = TaskState.scheduled if job.retry_intervals else TaskState.queued
        else:
            state = TaskState.stopped if stopped else TaskState.failed
        record_failure(self.settings, self.keys, job.id, state, exc_string, self.name)

    def run_maintenance_tasks(self) -> None:
        with guards.riding_out("maintenance"):
            super().run_maintenance_tasks()
        if keys.CONTROL_QUEUE in self.queue_names():
            # Every worker on the control queue asks for a sweep; the pending key keeps it to one.
            try:
                triggers.repair(self.connection, self.keys, "sweep", 0)
                triggers.trigger(self.connection, self.keys, "sweep", 0)
            except StopRequested:
                raise  # RQ's warm shutdown, raised by its signal handler wherever the worker is
            except Exception as error:
                log.warning("could not trigger the sweep", error=str(error))

    def maintain_heartbeats(self, job: Job, execution: Any) -> None:
        with guards.riding_out("heartbeat"):
            super().maintain_heartbeats(job, execution)

    def check_for_suspension(self, burst: bool) -> None:
        with guards.riding_out("suspension check"):
            super().check_for_suspension(burst)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().set_state(state, pipeline)
        else:
            with guards.riding_out("state"):
                super().set_state(state, pipeline)

    def register_birth(self) -> None:
        # A worker restarted under its name (supervisord's worker-1) takes over the record of its
        # dead predecessor and requeues the job it died in, instead of being refused for minutes.
        if self.connection.exists(self.key) and not self.connection.hexists(self.key, "death"):
            recovery.reap_predecessor(self)
        super().register_birth()

    # ---- health -------------------------------------------------------------------
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
        else:
            with guards.riding_out("heartbeat"):
                super().heartbeat(timeout, pipeline)
        now = time.monotonic()
        if self.is_horse or now - self._published < defaults.HEARTBEAT_MIN_GAP:
            return
        self._published = now
        try:
            stats = self.stats()
            numbers = {name: "" if stats[name] is None else stats[name] for name in STAT_FIELDS}  # read back by agentsys.status
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.publish(self.keys.channel_heartbeats, json.dumps(stats))
                pipe.hset(self.keys.worker_stats(self.name), mapping=numbers)  # type: ignore[arg-type]  # redis-py's key type is invariant
                pipe.expire(self.keys.worker_stats(self.name), self.worker_ttl + 60)
                pipe.execute()
        except StopRequested:
            raise  # RQ's warm shutdown, raised by its signal handler wherever the worker is
        except Exception as error:  # a missed heartbeat message must not stop the worker
            log.warning("heartbeat publish failed", error=str(error))

    def stats(self) -> dict[str, Any]:
        """What a heartbeat carries: the worker's own and its job processes' resources.

        The job process is the horse RQ forked (no scan of /proc for children: that cost
        milliseconds per beat); job processes already reaped count through the worker's
        ``children_*`` CPU times.
        """
        rss, cpu = 0, 0.0
        procs = [self._process]
        horse = getattr(self, "horse_pid", 0)
        if horse:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(horse))
        for proc in procs:
            try:
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
                if proc is self._process:
                    cpu += times.children_user + times.children_system
            except psutil.Error:
                continue
        return {
            "worker": self.name,
            "queues": self.queue_names(),
            "state": self.get_state(),
            "current_job": self.get_current_job_id(),
            "rss_bytes": rss,
            "cpu_seconds": round(cpu, 3),
            "jobs_done": self.successful_job_count,
            "failures": self.failed_job_count,
            "last_job_ms": self.last_job_ms,
            "pid": os.getpid(),
            "at": time.time(),
        }


def record_failure(settings: WorkerSettings, k: Keys, job_id: str, state: TaskState,
                   exc_string: str, worker_name: str) -> None:
    """Mirror a failed (or retried) job into ``task_runs`` when the job is a task."""
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    message = lines[-1].strip() if lines else "job failed"
    try:
        with db.connect(settings.database) as conn:
            run = tasks.set_state(conn, job_id, state, worker=worker_name, error=message,
                                  traceback={"text": exc_string} if exc_string else None)
            conn.commit()
        if run is not None:
            from agentsys.redis import connect

            tasks.publish_state(connect(settings.redis), k, run)
    except StopRequested:
        raise
    except Exception as error:  # the job's failure is already in RQ's failed registry
        log.error("could not record task failure", job_id=job_id, error=str(error))


class AgentWorker(AgentWorkerMixin, Worker):
    """RQ's forking worker with our additions: the production worker."""


class SimpleAgentWorker(AgentWorkerMixin, SimpleWorker):
    """Runs jobs in its own process: for tests and profiling only (no hard timeouts)."""
