"""Guards around running a job: refuse a bad payload before forking; rerun a job whose process died.

Anyone who can write to Redis can push a job. JSON (never pickle) keeps code out of the
payload, but a JSON job still names a function by dotted path, and ``os.system`` with a
shell command would run. So a job runs only when it names a registered job function (a
task type's or a triggerable agent's, by the same dotted paths callers enqueue), or one in
an extra module the operator preloads (WORKER_PRELOAD entries outside ``worker.``, like the
benchmark's naive jobs); carries a list of arguments and a mapping of keyword arguments;
and is at most WORKER_MAX_JOB_BYTES. Anything else fails at once into RQ's failed registry
with a one-line reason, and the worker goes on.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import redis.exceptions
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer

from agentsys import defaults
from agentsys.errors import first_line
from agentsys.logging import get_logger

log = get_logger("worker")

REFUSED = "JobRefused"
"""First word of a refused job's failure (RQ's failed registry, ``task_runs.error``)."""
HORSE_DIED = "Work-horse terminated unexpectedly"
"""How RQ starts the failure of a job whose process died (SIGKILL, out of memory)."""
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def registered_functions() -> frozenset[str]:
    from agentsys import triggers

    return frozenset(triggers.job_functions())


def task_functions() -> frozenset[str]:
    from agentsys import tasks

    return frozenset(t.func for t in tasks.TASK_TYPES.values())


def extra_modules(preload: str) -> frozenset[str]:
    """Preloaded modules outside the worker package: the operator allowed their functions."""
    names = (m.strip() for m in preload.split(","))
    return frozenset(m for m in names if m and not m.startswith("worker."))


def refusal(job: Job, *, max_bytes: int, preload: str) -> str | None:
    """Why ``job`` must not run, in one line; None when it may."""
    size = len(job.data)
    if size > max_bytes:
        return (f"job payload is {size:,} bytes, above the limit of {max_bytes:,} (WORKER_MAX_JOB_BYTES);"
                " jobs carry ids and small parameters, never data")
    try:
        func, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except DeserializationError:
        kind = _not_json(job.data)
        if kind is None:
            return f"job payload is JSON but not a job: {SHAPE}"
        return f"job payload is {kind}: workers run JSON jobs only (DeserializationError)"
    if not isinstance(func, str) or instance is not None:
        return f"job payload is JSON but not a job: {SHAPE}"
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return f"job {func[:100]}: its arguments must be a list and its keyword arguments a mapping"
    if func not in registered_functions() and func.rpartition(".")[0] not in extra_modules(preload):
        return f"job function {func[:100]!r} is not a job of this system (no task type or agent runs it)"
    if func in task_functions():
        task_id, params = kwargs.get("task_id"), kwargs.get("params")
        if (args or set(kwargs) - {"task_id", "params"} or not isinstance(task_id, str) or not task_id
                or not (params is None or isinstance(params, dict))):
            shown = json.dumps({"args": args, "kwargs": kwargs}, default=str)[:100]
            return f"job {func}: a task job takes task_id (a string) and params (a mapping), not {shown}"
    return None


SHAPE = 'expected ["package.module.function", null, [args], {kwargs}]'


def _not_json(data: bytes) -> str | None:
    """What the payload is when it is not JSON; None when it is."""
    if data[:1] == b"\x80":
        return "a pickle"
    try:
        json.loads(data)
    except ValueError:
        return "not JSON"
    return None


def rerun_after_crash(job: Job, *, limit: int) -> bool:
    """Give a job whose process died one more run (at most ``limit`` times); True when it will rerun.

    Every job of ours is safe to run twice: shard jobs are level-triggered and a task's
    ingest notices its own committed work, so a rerun loses and doubles nothing.
    """
    if job.should_retry:
        return True  # its own retries apply
    crashes = int(job.meta.get("crashes", 0)) + 1
    job.meta["crashes"] = crashes
    if crashes > limit:
        return False
    job.retries_left = 1
    job.retry_intervals = None  # at once, and first in line: it was when it died
    job.enqueue_at_front_on_retry = True
    return True


@contextlib.contextmanager
def riding_out(what: str) -> Iterator[None]:
    """Log and go on when Redis is unreachable (restarting): RQ's loop retries only its dequeue,
    and quits on any other failed Redis call (a heartbeat, post-job bookkeeping, maintenance).

    What was not written heals by itself: RQ finds an unfinished job abandoned when its
    heartbeat expires, and the sweep reruns lagging shards and abandoned tasks.
    """
    try:
        yield
    except REDIS_DOWN as error:
        log.warning("Redis unreachable; going on", during=what, error=first_line(error, fallback=""))


def wait_for_redis(client: redis.Redis, *, timeout: float = defaults.REDIS_WAIT_S) -> bool:
    """Ping until Redis answers (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bool(client.ping())
        except REDIS_DOWN:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def requeue_dropped(client: redis.Redis, job: Job) -> bool:
    """Put back a job this worker popped but never started (Redis went away in between); True if done."""
    if client.lpos(Queue.redis_queue_namespace_prefix + job.origin, job.id) is not None:
        return False
    Queue(job.origin, connection=client, serializer=JSONSerializer).enqueue_job(job, at_front=True)
    return True
