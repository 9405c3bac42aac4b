"""Tasks: submit, record a state change, wait, list.

The one code path for tasks: the orchestrator's ``POST /tasks`` and ``agentctl`` both
call :func:`submit` and :func:`wait`. A simple task is one RQ job whose id is the task
id; the job function is named by dotted path, so callers never import worker code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from agentsys import agents, defaults, keys, task_params
from agentsys.errors import AgentSysError, TaskExists, TaskNotFound, TaskTimeout, UnknownTaskType
from agentsys.keys import Keys
from agentsys.models import ENDED_STATES, Priority, TaskRun, TaskState


@dataclass(frozen=True, slots=True)
class TaskType:
    """How a task type runs: its queue and job function (a dotted path)."""

    name: str
    queue: str
    func: str
    timeout: int = defaults.JOB_TIMEOUT


INGEST_QUEUE = agents.first().queue
"""Composite tasks' ingest runs on the queue of the agent that takes prices in."""
TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("note", keys.CONTROL_QUEUE, "worker.jobs.note.run", timeout=60),
        TaskType("pipeline", INGEST_QUEUE, "worker.jobs.ingest.run"),
        TaskType("replay", INGEST_QUEUE, "worker.jobs.ingest.run"),
        TaskType("backfill", INGEST_QUEUE, "worker.jobs.ingest.run"),
        TaskType("recover", keys.CONTROL_QUEUE, "worker.jobs.control.recover"),
        TaskType("run_agent", keys.CONTROL_QUEUE, "worker.jobs.control.run_agent"),
        TaskType("cleanup", keys.CONTROL_QUEUE, "worker.jobs.control.cleanup"),
        TaskType("reshard", keys.CONTROL_QUEUE, "worker.jobs.control.reshard"),
    )
}
"""Every task type a user can submit."""


def register(task_type: TaskType) -> None:
    """Add a task type (the pipeline registers its own)."""
    TASK_TYPES[task_type.name] = task_type


def queue(redis: Redis, name: str) -> Queue:
    """An RQ queue that speaks JSON only (never pickle)."""
    return Queue(name, connection=redis, serializer=JSONSerializer, default_timeout=defaults.JOB_TIMEOUT)


def queue_for(base: str, priority: Priority) -> tuple[str, bool]:
    """Queue name and at-front flag for a priority (DESIGN section 4)."""
    if priority is Priority.low:
        return keys.low(base), False
    return base, priority is Priority.high


def _row(conn: psycopg.Connection, query: str, params: Mapping[str, Any] | tuple[Any, ...]) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def publish_state(redis: Redis | Pipeline, k: Keys, run: TaskRun) -> None:
    """Tell live listeners (the gateway) that a task changed state."""
    body = {"id": run.id, "type": run.type, "state": run.state.value, "progress": run.progress,
            "worker": run.worker, "error": run.error, "at": run.updated_at.isoformat()}
    redis.publish(k.channel_tasks, json.dumps(body))


@dataclass(frozen=True, slots=True)
class Submission:
    """One task to submit: what :func:`submit_many` takes."""

    type: str
    params: dict[str, Any] | None = None
    priority: Priority | str = Priority.normal
    task_id: str | None = None


def submit(
    redis: Redis,
    conn: psycopg.Connection,
    k: Keys,
    *,
    type: str,
    params: dict[str, Any] | None = None,
    priority: Priority | str = Priority.normal,
    task_id: str | None = None,
) -> TaskRun:
    """Record a task as queued, then enqueue its job (id = task id)."""
    outcome = submit_many(redis, conn, k, [Submission(type, params, priority, task_id)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def submit_many(redis: Redis, conn: psycopg.Connection, k: Keys,
                submissions: Sequence[Submission]) -> list[TaskRun | AgentSysError]:
    """Submit many tasks in two round trips: one INSERT (committed before any job can run,
    since the job updates its row) and one Redis pipeline with every job and state message.

    Each item's outcome is its TaskRun, or the error that refused it alone (an unknown type,
    bad params, an id taken already); the others go ahead. A Redis failure fails every task
    of the batch in PostgreSQL (nothing is left queued with no job) and is raised.
    """
    outcomes: list[TaskRun | AgentSysError] = []
    accepted: list[tuple[int, TaskType, dict[str, Any], str, bool]] = []
    ids: list[str] = []
    for i, item in enumerate(submissions):
        spec = TASK_TYPES.get(item.type)
        if spec is None:
            outcomes.append(UnknownTaskType(f"unknown task type {item.type!r}; known: {', '.join(sorted(TASK_TYPES))}"))
            continue
        try:
            params = task_params.validate(item.type, item.params)
        except AgentSysError as error:
            outcomes.append(error)
            continue
        qname, at_front = queue_for(spec.queue, Priority(item.priority))
        task_id = item.task_id or uuid.uuid4().hex
        outcomes.append(TaskExists(f"task {task_id} was submitted already"))  # until its row is in
        accepted.append((i, spec, params, qname, at_front))
        ids.append(task_id)
    if not accepted:
        return outcomes
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO task_runs (id, type, params, priority, state, queue, enqueued_at)"
            " SELECT id, type, params::jsonb, priority, 'queued', queue, now()"
            " FROM unnest(%(id)s::text[], %(type)s::text[], %(params)s::text[], %(priority)s::text[],"
            " %(queue)s::text[]) AS t(id, type, params, priority, queue)"
            " ON CONFLICT (id) DO NOTHING RETURNING *",
            {"id": ids, "type": [spec.name for _, spec, _, _, _ in accepted],
             "params": [json.dumps(params) for _, _, params, _, _ in accepted],
             "priority": [Priority(submissions[i].priority).value for i, _, _, _, _ in accepted],
             "queue": [qname for _, _, _, qname, _ in accepted]},
        )
        rows = {row["id"]: row for row in cur.fetchall()}
    conn.commit()
    by_queue: dict[str, list[Any]] = {}
    runs: list[TaskRun] = []
    for (i, spec, params, qname, at_front), task_id in zip(accepted, ids, strict=True):
        if task_id not in rows:
            continue  # a duplicate id: its TaskExists stays
        run = TaskRun.model_validate(rows[task_id])
        outcomes[i] = run
        runs.append(run)
        by_queue.setdefault(qname, []).append(Queue.prepare_data(
            spec.func, kwargs={"task_id": task_id, "params": params}, job_id=task_id, at_front=at_front,
            timeout=spec.timeout, result_ttl=defaults.RESULT_TTL, failure_ttl=defaults.FAILURE_TTL,
            description=f"{spec.name} {task_id}"))
    if not runs:
        return outcomes
    try:
        with redis.pipeline() as pipe:
            for qname, datas in by_queue.items():
                queue(redis, qname).enqueue_many(datas, pipeline=pipe)
            for run in runs:
                publish_state(pipe, k, run)
            pipe.execute()
    except Exception as error:
        for run in runs:
            set_state(conn, run.id, TaskState.failed, error=f"enqueue failed: {error}")
        conn.commit()
        raise
    return outcomes


def set_state(
    conn: psycopg.Connection,
    task_id: str,
    state: TaskState,
    *,
    worker: str | None = None,
    result: Any = None,
    error: str | None = None,
    traceback: Any = None,
    progress: float | None = None,
    count_attempt: bool = False,
) -> TaskRun | None:
    """Record a state change in the caller's transaction; None when no such task.

    An ended task never goes back (a late duplicate of its job cannot revive it).
    """
    row = _row(
        conn,
        """
        UPDATE task_runs SET
            state = %(state)s,
            worker = COALESCE(%(worker)s, worker),
            result = COALESCE(%(result)s, result),
            error = CASE WHEN %(state)s IN ('started', 'finished') THEN NULL ELSE COALESCE(%(error)s, error) END,
            traceback = CASE WHEN %(state)s IN ('started', 'finished') THEN NULL
                             ELSE COALESCE(%(traceback)s, traceback) END,
            progress = CASE WHEN %(state)s = 'finished' THEN 1 ELSE COALESCE(%(progress)s, progress) END,
            attempts = attempts + %(attempt)s,
            started_at = CASE WHEN %(state)s = 'started' AND task_runs.state <> 'started' THEN now() ELSE started_at END,
            ended_at = CASE WHEN %(state)s IN ('finished', 'failed', 'canceled', 'stopped') THEN now()
                            WHEN %(state)s IN ('queued', 'scheduled', 'deferred') THEN NULL ELSE ended_at END,
            updated_at = now()
        WHERE id = %(id)s AND state NOT IN ('finished', 'canceled')
        RETURNING *
        """,
        {
            "id": task_id,
            "state": TaskState(state).value,
            "worker": worker,
            "result": Jsonb(result) if result is not None else None,
            "error": error,
            "traceback": Jsonb(traceback) if traceback is not None else None,
            "progress": progress,
            "attempt": 1 if count_attempt else 0,
        },
    )
    return TaskRun.model_validate(row) if row else None


def get(conn: psycopg.Connection, task_id: str) -> TaskRun:
    row = _row(conn, "SELECT * FROM task_runs WHERE id = %s", (task_id,))
    if row is None:
        raise TaskNotFound(f"no task with id {task_id!r}")
    return TaskRun.model_validate(row)


def wait(conn: psycopg.Connection, task_id: str, *, timeout: float, poll: float = defaults.WAIT_POLL) -> TaskRun:
    """The task once it has ended; TaskTimeout when the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        run = get(conn, task_id)
        conn.rollback()  # a fresh snapshot next time round
        if run.state in ENDED_STATES:
            return run
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskTimeout(f"task {task_id} still {run.state.value} after {timeout:g}s")
        time.sleep(min(poll, left))


# ---- cancel and retry -----------------------------------------------------------------

class TaskConflict(AgentSysError):
    """The task's state does not allow this operation (cancel an ended task, retry a live one)."""


RETRYABLE_STATES = frozenset({TaskState.failed, TaskState.canceled, TaskState.stopped})
"""States from which a task may be retried."""
_LIVE_JOB = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def _fetch_job(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def _conflict(conn: psycopg.Connection, task_id: str, doing: str) -> TaskConflict:
    conn.rollback()
    run = get(conn, task_id)  # TaskNotFound for an unknown id
    return TaskConflict(f"cannot {doing} task {task_id}: it is {run.state.value}")


def cancel(redis: Redis, conn: psycopg.Connection, k: Keys, task_id: str) -> TaskRun:
    """Cancel a task that has not ended: a queued job is dropped, a running one is stopped.

    ``task_runs`` says canceled first (and :func:`set_state` never moves a task out of
    it), so a job that slips through anyway cannot revive the task. Data a composite
    task already ingested stays: cancel stops the work, it does not undo it.
    """
    row = _row(
        conn,
        "UPDATE task_runs SET state = 'canceled', ended_at = now(), updated_at = now()"
        " WHERE id = %s AND state NOT IN ('finished', 'failed', 'canceled', 'stopped') RETURNING *",
        (task_id,),
    )
    if row is None:
        raise _conflict(conn, task_id, "cancel")
    conn.commit()
    run = TaskRun.model_validate(row)
    job = _fetch_job(redis, task_id)
    if job is not None:
        status = job.get_status(refresh=False)
        try:
            if status == JobStatus.STARTED:
                send_stop_job_command(redis, task_id, serializer=JSONSerializer)
            elif status in _LIVE_JOB:
                job.cancel()
        except InvalidJobOperation:
            pass  # it ended meanwhile; the task row already says canceled
    publish_state(redis, k, run)
    return run


def retry(redis: Redis, conn: psycopg.Connection, k: Keys, task_id: str) -> TaskRun:
    """Run a failed, canceled or stopped task again, under the same id and priority."""
    current = get(conn, task_id)
    spec = TASK_TYPES.get(current.type)
    if spec is None:
        raise UnknownTaskType(f"task type {current.type!r} is no longer known")
    job = _fetch_job(redis, task_id)
    if job is not None and job.get_status(refresh=False) in _LIVE_JOB:
        conn.rollback()
        raise TaskConflict(f"cannot retry task {task_id}: its job is still {job.get_status(refresh=False)}")
    row = _row(
        conn,
        """
        UPDATE task_runs SET state = 'queued', result = NULL, error = NULL, traceback = NULL, progress = 0,
            worker = NULL, enqueued_at = now(), started_at = NULL, ended_at = NULL, updated_at = now()
        WHERE id = %s AND state IN ('failed', 'canceled', 'stopped') RETURNING *
        """,
        (task_id,),
    )
    if row is None:
        raise _conflict(conn, task_id, "retry")
    conn.commit()
    run = TaskRun.model_validate(row)
    if job is not None:
        job.delete()  # re-enqueuing a fixed id over an existing job pushes it twice (rq#1701)
    qname = run.queue or queue_for(spec.queue, run.priority)[0]
    try:
        queue(redis, qname).enqueue(
            spec.func,
            kwargs={"task_id": task_id, "params": run.params},
            job_id=task_id,
            at_front=run.priority is Priority.high,
            job_timeout=spec.timeout,
            result_ttl=defaults.RESULT_TTL,
            failure_ttl=defaults.FAILURE_TTL,
            description=f"{run.type} {task_id} (retry)",
        )
    except Exception as error:
        set_state(conn, task_id, TaskState.failed, error=f"enqueue failed: {error}")
        conn.commit()
        raise
    publish_state(redis, k, run)
    return run
