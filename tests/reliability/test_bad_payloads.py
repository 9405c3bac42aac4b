"""Malformed jobs pushed straight into Redis (wrong argument types, unknown or dangerous function
paths, pickle, not JSON, oversized): each fails into the failed registry with a one-line reason,
none runs code, and the same worker processes then do valid work."""

from __future__ import annotations

import json
import pickle
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import now

from agentsys import defaults, tasks
from tests.reliability.conftest import report
from tests.support import procs, wait
from tests.support.pipeline import rows, submit_rows


class _Marker:
    """Unpickling this creates a file: what an attacker's payload would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def push(redis, queue: str, job_id: str, func: str, *, args=(), kwargs=None, data: bytes | None = None) -> None:
    """Write a job hash and push its id, as anyone with access to Redis could (no worker code involved)."""
    job = Job.create(func, args=args, kwargs=kwargs or {}, connection=redis, serializer=JSONSerializer, id=job_id,
                     origin=queue, timeout=60, failure_ttl=3600, description=f"bad input {job_id}")
    job._status = JobStatus.QUEUED
    job.enqueued_at = now()
    job.save()
    if data is not None:
        redis.hset(job.key, "data", data)
    redis.sadd("rq:queues", f"rq:queue:{queue}")
    redis.rpush(f"rq:queue:{queue}", job_id)


def cases(marker: Path) -> dict[str, tuple[str, dict, str]]:
    """id -> (queue, push arguments, pattern the one-line reason must match)."""
    shell = f"touch {marker}"
    oversized = list(range(2_000_000))  # ~15 MB of JSON: above WORKER_MAX_JOB_BYTES
    return {
        "unknown-function": ("indicator", {"func": "worker.agents.nope.run", "args": (0,)},
                             r"JobRefused: job function 'worker.agents.nope.run' is not a job of this system"),
        "os-system": ("control", {"func": "os.system", "args": (shell,)},
                      r"JobRefused: job function 'os.system' is not a job of this system"),
        "eval": ("price", {"func": "builtins.eval", "args": (f"__import__('os').system({shell!r})",)},
                 r"JobRefused: job function 'builtins.eval' is not a job of this system"),
        "module-helper": ("price", {"func": "worker.jobs.ingest.reset_indicators", "args": (None, ["A"])},
                          r"JobRefused: job function 'worker.jobs.ingest.reset_indicators' is not a job"),
        "pickle": ("control", {"func": "worker.jobs.note.run",
                               "data": zlib.compress(pickle.dumps(_Marker(marker), protocol=5))},
                   r"JobRefused: job payload is a pickle: workers run JSON jobs only"),
        "not-json": ("bang", {"func": "worker.agents.bang.run", "data": b"\x00\x01 not json at all"},
                     r"JobRefused: job payload is not JSON: workers run JSON jobs only"),
        "json-not-a-job": ("bang", {"func": "worker.agents.bang.run", "data": b'{"func": "os.system"}'},
                           r"JobRefused: job payload is JSON but not a job: expected \["),
        "args-not-a-list": ("bang", {"func": "worker.agents.bang.run",
                                     "data": b'["worker.agents.bang.run", null, "0", {}]'},
                            r"JobRefused: job worker.agents.bang.run: its arguments must be a list"),
        "oversized": ("indicator", {"func": "worker.agents.indicator.run", "args": (oversized,)},
                      r"JobRefused: job payload is [\d,]+ bytes, above the limit of [\d,]+ \(WORKER_MAX_JOB_BYTES\)"),
        "shard-not-int": ("indicator", {"func": "worker.agents.indicator.run", "args": ("zero",)},
                          r"TypeError: shard must be a non-negative integer, not 'zero'"),
        "shard-negative": ("bang", {"func": "worker.agents.bang.run", "args": (-3,)},
                           r"TypeError: shard must be a non-negative integer, not -3"),
        "unknown-kwarg": ("indicator", {"func": "worker.agents.indicator.run", "kwargs": {"shard": 0, "x": 1}},
                          r"TypeError: .*unexpected keyword argument 'x'"),
        "task-id-not-str": ("price", {"func": "worker.jobs.ingest.run", "kwargs": {"task_id": 123, "params": {}}},
                            r"JobRefused: job worker.jobs.ingest.run: a task job takes task_id \(a string\)"),
        "task-params-not-a-mapping": ("control", {"func": "worker.jobs.note.run",
                                                  "kwargs": {"task_id": "n1", "params": [1, 2]}},
                                      r"JobRefused: job worker.jobs.note.run: a task job takes task_id"),
        "unknown-task": ("price", {"func": "worker.jobs.ingest.run", "kwargs": {"task_id": "nope", "params": {}}},
                         r"TaskNotFound: no task with id 'nope'"),
    }


def _reason(redis, job_id: str) -> str:
    job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    result = job.latest_result()
    text = (result.exc_string if result else None) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


@pytest.mark.timeout(170)
def test_malformed_jobs_fail_clearly_and_the_workers_go_on(stack):
    marker = stack.tmp / "pwned"
    env = {**stack.env, "MAINTENANCE_INTERVAL": "3600", "WORKER_WITH_SCHEDULER": "false"}
    table = cases(marker)
    for job_id, (queue, spec, _) in table.items():
        push(stack.redis, queue, job_id, spec["func"], args=spec.get("args", ()), kwargs=spec.get("kwargs"),
             data=spec.get("data"))
    workers = [procs.agent_worker(env, stack.tmp / f"b{i}.log", name=f"bad-{i}") for i in range(2)]
    try:
        pids = [w.pid for w in workers]
        registries = {q: FailedJobRegistry(q, connection=stack.redis, serializer=JSONSerializer)
                      for q in {q for q, _, _ in table.values()}}
        def missing() -> dict[str, str]:
            return {job_id: Job.fetch(job_id, connection=stack.redis, serializer=JSONSerializer).get_status()
                    for job_id, (q, _, _) in table.items() if job_id not in registries[q].get_job_ids()}

        try:
            wait.until(lambda: not missing(), timeout=60, what="every bad job in the failed registry")
        except AssertionError as error:
            raise AssertionError(f"{error}; not failed: {missing()}") from None
        reasons = {job_id: _reason(stack.redis, job_id) for job_id in table}
        for job_id, (_, _, pattern) in table.items():
            assert re.search(pattern, reasons[job_id]), (job_id, reasons[job_id])
            assert len(reasons[job_id]) <= 300 and "Traceback" not in reasons[job_id], (job_id, reasons[job_id])
        assert not marker.exists(), "a payload ran code"
        # the same processes now run valid work
        rng = np.random.default_rng(3)
        run = submit_rows(stack, rows({"GOOD": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 120)))}))
        with stack.db() as conn:
            done = tasks.wait(conn, run.id, timeout=60)
        assert done.state == "finished", done
        assert [w.pid for w in workers] == pids and all(w.poll() is None for w in workers)
        assert defaults.JOB_MAX_BYTES < 15_000_000
        report("bad_payloads", cases=len(table), refused_before_fork=sum(r.startswith("JobRefused") for r in
                                                                          reasons.values()),
               reasons={k: v[:160] for k, v in reasons.items()})
    finally:
        for w in workers:
            procs.stop(w)
    logs = "".join((stack.tmp / f"b{i}.log").read_text() for i in range(2))
    assert "found an unhandled exception" not in logs
    refused = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and '"job refused"' in line]
    assert {r["job_id"] for r in refused} >= {"os-system", "pickle", "oversized"}
