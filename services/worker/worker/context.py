"""What a job needs, built inside the job process (after RQ's fork)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from redis import Redis
from rq import get_current_job

from agentsys import db, tasks
from agentsys.keys import Keys
from agentsys.logging import get_logger
from agentsys.models import TaskState
from agentsys.redis import connect
from worker.settings import WorkerSettings, get_settings

log = get_logger("worker.job")


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: WorkerSettings
    keys: Keys
    redis: Redis
    worker: str | None
    job_id: str | None

    def connect_db(self) -> psycopg.Connection:
        return db.connect(self.settings.database)


def current() -> JobContext:
    settings = get_settings()
    job = get_current_job()
    return JobContext(
        settings=settings,
        keys=Keys(settings.key_prefix),
        redis=connect(settings.redis),
        worker=job.worker_name if job else None,
        job_id=job.id if job else None,
    )


TaskBody = Callable[[JobContext, psycopg.Connection, dict[str, Any]], Any]


def task_job(body: TaskBody) -> Callable[..., Any]:
    """Run a simple task's body: started, then finished with its result, in ``task_runs``.

    Failures are recorded by the worker (``AgentWorker.handle_job_failure``), which also
    sees the ones no job code can (timeouts, killed job processes). One log line per job
    carries its duration.
    """

    @functools.wraps(body)
    def run(task_id: str, params: dict[str, Any] | None = None) -> Any:
        ctx = current()
        begin = time.perf_counter()
        with structlog.contextvars.bound_contextvars(task_id=task_id, job_id=ctx.job_id, task=body.__module__):
            try:
                with ctx.connect_db() as conn:
                    started = tasks.set_state(conn, task_id, TaskState.started, worker=ctx.worker, count_attempt=True)
                    conn.commit()
                    if started is not None:
                        tasks.publish_state(ctx.redis, ctx.keys, started)
                    result = body(ctx, conn, params or {})
                    done = tasks.set_state(conn, task_id, TaskState.finished, result=result)
                    conn.commit()
                if done is not None:
                    tasks.publish_state(ctx.redis, ctx.keys, done)
            except BaseException:
                log.exception("job failed", duration_ms=round((time.perf_counter() - begin) * 1000, 3))
                raise
            log.info("job finished", duration_ms=round((time.perf_counter() - begin) * 1000, 3))
            return result

    return run
