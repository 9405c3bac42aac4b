"""Crash recovery: put the jobs of dead workers back on their queues.

RQ finds a job abandoned only when its execution's heartbeat has expired (at least
``job_monitoring_interval + 60`` seconds after its worker died), then moves it to the
failed registry; and a worker restarted under the same name (supervisord's ``worker-1``)
cannot even register while its dead predecessor's record lives (``worker_ttl + 60`` s).
Two repairs, both through RQ's own registries:

- :func:`reap_predecessor`: a worker starting under a name whose registered holder is a
  dead process on this host takes the record over at once, handing the predecessor's
  in-flight jobs to RQ's abandoned-job handling and requeueing them.
- :func:`requeue_abandoned_tasks` (from the sweep): a task whose job RQ moved to the failed
  registry as abandoned runs again, up to :data:`defaults.MAX_ABANDONED_ATTEMPTS` attempts.

Every job of ours is safe to run twice (shard jobs are level-triggered, task jobs
idempotent), so requeueing is always right; nothing is lost and nothing doubles.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from agentsys import defaults, tasks, triggers
from agentsys.keys import Keys
from agentsys.logging import get_logger
from agentsys.models import TaskState

log = get_logger("worker.recovery")

ABANDONED = "AbandonedJobError"
"""What RQ writes into the failure of a job whose worker died."""


def _is_live_worker(pid: int) -> bool:
    """True when ``pid`` is a running worker process (not a dead one's recycled pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: assume the worst (a live duplicate)
    return b"worker" in cmdline


def _abandon_now(redis: Redis, execution_key: str, job: Job) -> bool:
    """Let RQ handle one execution as abandoned right away; True when the job is now failed."""
    registry = StartedJobRegistry(job.origin, connection=redis, serializer=JSONSerializer)
    redis.zadd(registry.key, {execution_key: 0}, xx=True)  # expired: RQ's clean-up takes it now
    registry.cleanup()
    return job.get_status(refresh=True) == JobStatus.FAILED


def _requeue(redis: Redis, job: Job) -> bool:
    try:
        FailedJobRegistry(job.origin, connection=redis, serializer=JSONSerializer).requeue(job, at_front=True)
        return True
    except (InvalidJobOperation, NoSuchJobError):
        return False  # someone else requeued or removed it meanwhile


def reap_predecessor(worker: Any) -> list[str]:
    """Take over the record of a dead worker with our name on this host; returns requeued job ids.

    Does nothing when the registered holder may be alive (another host, or a live process):
    RQ then refuses the duplicate name as usual.
    """
    redis: Redis = worker.connection
    old = Worker.find_by_key(worker.key, connection=redis, serializer=JSONSerializer)
    if old is None:
        return []
    if old.hostname != socket.gethostname() or (old.pid != os.getpid() and old.pid and _is_live_worker(old.pid)):
        return []
    requeued = []
    for execution in old.get_current_executions(refresh=True):
        try:
            job = Job.fetch(execution.job_id, connection=redis, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) == JobStatus.STARTED and _abandon_now(redis, execution.composite_key, job):
            if _requeue(redis, job):
                requeued.append(job.id)
    old.register_death()
    log.warning("took over the record of a dead worker with this name", worker=worker.name, dead_pid=old.pid,
                requeued=requeued)
    return requeued


def requeue_abandoned_tasks(redis: Redis, conn: psycopg.Connection, k: Keys) -> dict[str, list[str]]:
    """Rerun tasks whose job RQ found abandoned, or lost in its pop window; fail those abandoned too often."""
    rows = conn.execute(
        "SELECT id, attempts, state FROM task_runs WHERE state = 'started'"
        " OR (state = 'queued' AND enqueued_at < now() - make_interval(secs => %s))", (triggers.LOST_AFTER_S,)
    ).fetchall()
    conn.rollback()
    requeued, failed, lost = [], [], []
    for task_id, attempts, state in rows:
        try:
            job = Job.fetch(task_id, connection=redis, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        status = job.get_status(refresh=False)
        if state == "queued":
            if status == JobStatus.QUEUED and triggers.is_lost(redis, job):
                Queue(job.origin, connection=redis, serializer=JSONSerializer).enqueue_job(job, at_front=True)
                lost.append(task_id)
            continue
        if status != JobStatus.FAILED:
            continue
        result = job.latest_result()
        if ABANDONED not in ((result.exc_string if result else None) or job.exc_info or ""):
            continue
        if attempts < defaults.MAX_ABANDONED_ATTEMPTS:
            if _requeue(redis, job):
                run = tasks.set_state(conn, task_id, TaskState.queued)
                conn.commit()
                if run is not None:
                    tasks.publish_state(redis, k, run)
                requeued.append(task_id)
        else:
            run = tasks.set_state(conn, task_id, TaskState.failed,
                                  error=f"abandoned by its worker {attempts} times (the worker died mid-job)")
            conn.commit()
            if run is not None:
                tasks.publish_state(redis, k, run)
            failed.append(task_id)
    if requeued or failed or lost:
        log.warning("abandoned tasks", requeued=requeued, failed=failed, lost=lost)
    return {"requeued": requeued, "failed": failed, "lost": lost}
