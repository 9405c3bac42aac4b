"""Crash recovery: jobs lost in RQ's pop window, tasks abandoned by a dead worker."""

from __future__ import annotations

import numpy as np
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from agentsys import defaults, tasks, triggers
from tests.support.pipeline import QuietWorker, drain, rows, submit_rows
from worker import recovery


def _series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {f"R{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 120))) for i in range(2)}


def test_a_job_lost_between_pop_and_registry_is_caught_up_by_the_sweep(stack, monkeypatch):
    run = submit_rows(stack, rows(_series()))
    QuietWorker([tasks.queue(stack.redis, "price")], connection=stack.redis).work(burst=True)  # the ingest only
    lost = stack.redis.lpop("rq:queue:indicator")  # a worker popped it (BLPOP) and died before registering it
    assert lost and Job.fetch(lost.decode(), connection=stack.redis, serializer=JSONSerializer).get_status() == "queued"
    drain(stack)
    with stack.db() as conn:
        assert tasks.get(conn, run.id).state == "started"  # stuck: the pending key still names the lost job
    monkeypatch.setattr(triggers, "LOST_AFTER_S", 0.0)
    triggers.trigger(stack.redis, stack.keys, "sweep", 0)
    drain(stack)
    with stack.db() as conn:
        assert tasks.get(conn, run.id).state == "finished"
        assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 240


def test_a_queued_job_a_worker_can_still_get_is_not_lost(stack, monkeypatch):
    monkeypatch.setattr(triggers, "LOST_AFTER_S", 0.0)
    job_id = triggers.trigger(stack.redis, stack.keys, "indicator", 0)
    job = Job.fetch(job_id, connection=stack.redis, serializer=JSONSerializer)
    assert not triggers.is_lost(stack.redis, job)
    assert not triggers.repair(stack.redis, stack.keys, "indicator", 0)
    assert triggers.is_lost(stack.redis, job, after_s=0) is False
    monkeypatch.setattr(triggers, "LOST_AFTER_S", 3600.0)
    stack.redis.lpop("rq:queue:indicator")
    assert not triggers.is_lost(stack.redis, job)  # too recent to call lost


def _abandon(stack, task_id: str) -> None:
    """What RQ does to the job of a worker that died mid-job, once its heartbeat has expired."""
    queue = tasks.queue(stack.redis, "control")
    job = Job.fetch(task_id, connection=stack.redis, serializer=JSONSerializer)
    queue.remove(job)
    registry = StartedJobRegistry("control", connection=stack.redis, serializer=JSONSerializer)
    with stack.redis.pipeline() as pipe:
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.zadd(registry.key, {f"{task_id}:dead": 0})
        pipe.execute()
    with stack.db() as conn:
        tasks.set_state(conn, task_id, "started", worker="dead-worker", count_attempt=True)
        conn.commit()
    registry.cleanup()
    assert job.get_status(refresh=True) == JobStatus.FAILED


def test_a_task_abandoned_by_its_worker_runs_again_and_is_failed_after_too_many_tries(stack):
    with stack.db() as conn:
        run = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "again"})
    _abandon(stack, run.id)
    with stack.db() as conn:
        found = recovery.requeue_abandoned_tasks(stack.redis, conn, stack.keys)
        assert found["requeued"] == [run.id]
        assert tasks.get(conn, run.id).state == "queued"
    drain(stack)
    with stack.db() as conn:
        done = tasks.get(conn, run.id)
        assert done.state == "finished" and done.attempts == 2

        again = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "doomed"})
        conn.execute("UPDATE task_runs SET attempts = %s WHERE id = %s", (defaults.MAX_ABANDONED_ATTEMPTS - 1, again.id))
        conn.commit()
    _abandon(stack, again.id)
    with stack.db() as conn:
        assert recovery.requeue_abandoned_tasks(stack.redis, conn, stack.keys)["failed"] == [again.id]
        failed = tasks.get(conn, again.id)
        assert failed.state == "failed" and "abandoned" in failed.error


def test_the_recovery_sweep_task_reruns_abandoned_tasks(stack):
    with stack.db() as conn:
        run = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "swept"})
    _abandon(stack, run.id)
    with stack.db() as conn:
        sweep = tasks.submit(stack.redis, conn, stack.keys, type="recover", params={})
    drain(stack)
    with stack.db() as conn:
        assert tasks.get(conn, sweep.id).result["tasks"]["requeued"] == [run.id]
        assert tasks.get(conn, run.id).state == "finished"
