"""Tasks: submit, record a state change, wait, list.

The one code path for tasks: the orchestrator's ``POST /tasks`` and ``agentctl`` both
call :func:`submit` and :func:`wait`. A simple task is one RQ job whose id is the task
id; the job function is named by dotted path, so callers never import worker code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from agentsys import defaults, keys, task_params
from agentsys.errors import TaskNotFound, TaskTimeout, UnknownTaskType
from agentsys.keys import Keys
from agentsys.models import ENDED_STATES, Priority, TaskRun, TaskState


@dataclass(frozen=True, slots=True)
class TaskType:
    """How a task type runs: its queue and job function (a dotted path)."""

    name: str
    queue: str
    func: str
    timeout: int = defaults.JOB_TIMEOUT


TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("note", keys.CONTROL_QUEUE, "worker.jobs.note.run", timeout=60),
        TaskType("pipeline", "price", "worker.jobs.ingest.run"),
        TaskType("replay", "price", "worker.jobs.ingest.run"),
        TaskType("backfill", "price", "worker.jobs.ingest.run"),
        TaskType("recover", keys.CONTROL_QUEUE, "worker.jobs.control.recover"),
        TaskType("run_agent", keys.CONTROL_QUEUE, "worker.jobs.control.run_agent"),
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
        cur.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchone()


def publish_state(redis: Redis, k: Keys, run: TaskRun) -> None:
    """Tell live listeners (the gateway) that a task changed state."""
    body = {"id": run.id, "type": run.type, "state": run.state.value, "progress": run.progress,
            "worker": run.worker, "error": run.error, "at": run.updated_at.isoformat()}
    redis.publish(k.channel_tasks, json.dumps(body))


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
    spec = TASK_TYPES.get(type)
    if spec is None:
        raise UnknownTaskType(f"unknown task type {type!r}; known: {', '.join(sorted(TASK_TYPES))}")
    prio = Priority(priority)
    task_id = task_id or uuid.uuid4().hex
    params = task_params.validate(type, params)
    qname, at_front = queue_for(spec.queue, prio)
    row = _row(
        conn,
        "INSERT INTO task_runs (id, type, params, priority, state, queue, enqueued_at)"
        " VALUES (%(id)s, %(type)s, %(params)s, %(priority)s, 'queued', %(queue)s, now()) RETURNING *",
        {"id": task_id, "type": type, "params": Jsonb(params), "priority": prio.value, "queue": qname},
    )
    conn.commit()
    assert row is not None
    try:
        queue(redis, qname).enqueue(
            spec.func,
            kwargs={"task_id": task_id, "params": params},
            job_id=task_id,
            at_front=at_front,
            job_timeout=spec.timeout,
            result_ttl=defaults.RESULT_TTL,
            failure_ttl=defaults.FAILURE_TTL,
            description=f"{type} {task_id}",
        )
    except Exception as error:
        set_state(conn, task_id, TaskState.failed, error=f"enqueue failed: {error}")
        conn.commit()
        raise
    run = TaskRun.model_validate(row)
    publish_state(redis, k, run)
    return run


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


def list_runs(
    conn: psycopg.Connection,
    *,
    state: str | None = None,
    type: str | None = None,
    worker: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[TaskRun]:
    """Newest first; ``before`` is the (created_at, id) cursor of the last row seen."""
    where, args = [], {}
    for column, value in (("state", state), ("type", type), ("worker", worker)):
        if value is not None:
            where.append(f"{column} = %({column})s")
            args[column] = value
    if since is not None:
        where.append("created_at >= %(since)s")
        args["since"] = since
    if until is not None:
        where.append("created_at < %(until)s")
        args["until"] = until
    if before is not None:
        where.append("(created_at, id) < (%(b_at)s, %(b_id)s)")
        args["b_at"], args["b_id"] = before
    query = "SELECT * FROM task_runs"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += " ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
    args["limit"] = limit
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, args)  # type: ignore[arg-type]
        return [TaskRun.model_validate(r) for r in cur.fetchall()]
