"""The job runtime: what every job does around its work, each concern written once.

In the spirit of dramatiq's middleware, a job is its body inside a chain of steps. Each
step owns one concern and calls the next, or ends the job early with an :class:`Outcome`:

- :func:`logged` binds the job's fields (``job_id``, ``agent``, ``shard``, ``task_id``) into
  structlog's contextvars and writes the job's one line, with its duration;
- :func:`pending` deletes the trigger's pending key before any input is read, so a trigger
  arriving mid-run enqueues one more run;
- :func:`flagged` reads the agent's runtime flag at job start;
- :func:`retried` turns transient Redis and PostgreSQL errors into RQ's ``Retry`` with
  exponential backoff and jitter (the input was fine; the server went away);
- :func:`connected` opens the job's database connection, inside the job process;
- :func:`started` and :func:`finished` record the task's state in ``task_runs``.

:func:`shard_job` and :func:`task_job` are the two usual chains. Failures are recorded by
the worker (``AgentWorker.handle_job_failure``), which also sees the ones no job code can
(timeouts, killed job processes).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis.exceptions
import structlog
from rq import Retry

from agentsys import defaults, errors, flags, tasks
from agentsys.logging import get_logger
from agentsys.models import TaskRun, TaskState
from worker.context import JobContext, current

log = get_logger("worker.job")

TRANSIENT = (psycopg.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Errors worth retrying: the server went away or timed out, the input was fine."""


def backoff(*, retries: int = defaults.RETRY_MAX, base: float = defaults.RETRY_BASE,
            cap: float = defaults.RETRY_CAP) -> list[int]:
    """Retry intervals in whole seconds: doubling from ``base``, capped, each with +-50% jitter."""
    return [max(1, round(min(cap, base * 2**i) * random.uniform(0.5, 1.5))) for i in range(retries)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A job's end other than its body's plain result: what RQ gets, and the job's line."""

    value: Any
    event: str | None = "job finished"
    """The line's message; None writes no line (the sweep, when it found nothing to do)."""
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class JobRun:
    """One run of a job, as its steps see it."""

    ctx: JobContext
    fields: dict[str, Any]
    begin: float = field(default_factory=time.perf_counter)
    db: psycopg.Connection | None = None
    task: TaskRun | None = None
    """The task row, when :func:`started` read it."""

    @property
    def conn(self) -> psycopg.Connection:
        """The connection :func:`connected` opened (a step order error otherwise)."""
        if self.db is None:
            raise RuntimeError("no database connection: put runtime.connected before this step")
        return self.db

    def ms(self) -> float:
        """Milliseconds since the job began."""
        return round((time.perf_counter() - self.begin) * 1000, 3)


Next = Callable[[], Any]
Step = Callable[[JobRun, Next], Any]


def chain(job: JobRun, steps: Sequence[Step], body: Callable[[JobRun], Any]) -> Next:
    """``body`` inside ``steps`` (outermost first), ready to call."""
    call: Next = functools.partial(body, job)
    for step in reversed(steps):
        call = functools.partial(step, job, call)
    return call


def run(steps: Sequence[Step], body: Callable[[JobRun], Any], **fields: Any) -> Any:
    """Run ``body`` inside ``steps`` in this job process; returns what RQ should get."""
    ctx = current()
    return chain(JobRun(ctx, {**fields, "job_id": ctx.job_id}), steps, body)()


def _nothing(result: Any) -> dict[str, Any]:
    return {}


def logged(summary: Callable[[Any], dict[str, Any]] = _nothing) -> Step:
    """The job's fields in every line it logs, and its one line: ``job finished`` with
    ``duration_ms`` and ``summary(result)`` (benches parse ``agent``, ``duration_ms``, ``ticks``),
    an early :class:`Outcome`'s own line, or ``job failed`` with the traceback."""

    def step(job: JobRun, call_next: Next) -> Any:
        with structlog.contextvars.bound_contextvars(**job.fields):
            try:
                got = call_next()
            except BaseException:
                log.exception("job failed", duration_ms=job.ms())
                raise
            outcome = got if isinstance(got, Outcome) else Outcome(got, fields=summary(got))
            if outcome.event is not None:
                getattr(log, outcome.level)(outcome.event, duration_ms=job.ms(), **outcome.fields)
            return outcome.value

    return step


def pending(name: str, shard: int) -> Step:
    """Delete the pending key of (``name``, ``shard``) before anything reads an input."""

    def step(job: JobRun, call_next: Next) -> Any:
        job.ctx.redis.delete(job.ctx.keys.pending(name, shard))
        return call_next()

    return step


def flagged(agent: str) -> Step:
    """Do nothing (and say so) while the agent's runtime flag is off; read at job start."""

    def step(job: JobRun, call_next: Next) -> Any:
        if not flags.is_enabled(job.ctx.redis, job.ctx.keys, agent):
            return Outcome({"skipped": "agent disabled"}, event="agent disabled; nothing done")
        return call_next()

    return step


def retried(job: JobRun, call_next: Next) -> Any:
    """A transient error becomes RQ's Retry with backoff instead of a failure."""
    try:
        return call_next()
    except TRANSIENT as error:
        return Outcome(Retry(max=defaults.RETRY_MAX, interval=backoff()), event="transient error; will retry",
                       level="warning", fields={"error": errors.first_line(error, fallback="")})


def connected(job: JobRun, call_next: Next) -> Any:
    """Open the job's connection (after RQ's fork); it commits when the rest returns."""
    with job.ctx.connect_db() as conn:
        job.db = conn
        try:
            return call_next()
        finally:
            job.db = None


def started(*, skip_ended: bool = False) -> Step:
    """Record the task (``task_id`` field) as started, counting an attempt, and announce it.

    With ``skip_ended`` the task is read first (``job.task``), and a task that has ended
    already (a late duplicate of its job) ends the job at once.
    """

    def step(job: JobRun, call_next: Next) -> Any:
        conn, ctx, task_id = job.conn, job.ctx, job.fields["task_id"]
        if skip_ended:
            job.task = tasks.get(conn, task_id)
            if job.task.ended:
                state = job.task.state.value
                return Outcome({"skipped": f"task {state}"}, event="task already ended; nothing done",
                               fields={"state": state})
        run = tasks.set_state(conn, task_id, TaskState.started, worker=ctx.worker, count_attempt=True)
        conn.commit()
        if run is not None:
            tasks.publish_state(ctx.redis, ctx.keys, run)
        return call_next()

    return step


def finished(job: JobRun, call_next: Next) -> Any:
    """Record the body's result as the task's, finished, and announce it."""
    result = call_next()
    done = tasks.set_state(job.conn, job.fields["task_id"], TaskState.finished, result=result)
    job.conn.commit()
    if done is not None:
        tasks.publish_state(job.ctx.redis, job.ctx.keys, done)
    return result


ShardBody = Callable[[JobContext, psycopg.Connection, int], dict[str, Any]]


def shard_job(agent: str) -> Callable[[ShardBody], Callable[[int], Any]]:
    """An agent's job function ``run(shard)``: level-triggered, so a run is "bring shard up to date"."""

    def wrap(body: ShardBody) -> Callable[[int], Any]:
        @functools.wraps(body)
        def run_shard(shard: int) -> Any:
            if not isinstance(shard, int) or isinstance(shard, bool) or shard < 0:
                raise TypeError(f"shard must be a non-negative integer, not {shard!r}")
            steps = [logged(dict), pending(agent, shard), flagged(agent), retried, connected]
            return run(steps, lambda job: body(job.ctx, job.conn, shard), agent=agent, shard=shard)

        return run_shard

    return wrap


TaskBody = Callable[[JobContext, psycopg.Connection, dict[str, Any]], Any]


def task_job(body: TaskBody) -> Callable[..., Any]:
    """A simple task's job function ``run(task_id, params)``: started, then finished with its result."""

    @functools.wraps(body)
    def run_task(task_id: str, params: dict[str, Any] | None = None) -> Any:
        return run([logged(), connected, started(), finished], lambda job: body(job.ctx, job.conn, params or {}),
                   task_id=task_id, task=body.__module__)

    return run_task
