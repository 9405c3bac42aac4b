from __future__ import annotations

import json
import pickle
import zlib
from pathlib import Path

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from agentsys import tasks
from agentsys.errors import InputError
from tests.support import procs, wait


def _states_from_channel(pubsub) -> list[str]:
    seen = []
    while (message := pubsub.get_message(timeout=0.01)) is not None:
        if message["type"] == "message":
            seen.append(json.loads(message["data"])["state"])
    return seen


def test_note_task_goes_queued_started_finished_through_a_real_worker(stack):
    pubsub = stack.redis.pubsub()
    pubsub.subscribe(stack.keys.channel_tasks)
    pubsub.get_message(timeout=1)  # subscription confirmation
    log = stack.tmp / "worker.log"
    worker = procs.rq_worker(stack.env, log, "control", name="note-worker")
    try:
        with stack.db() as conn:
            run = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "hello"})
            assert run.state == "queued"
            done = tasks.wait(conn, run.id, timeout=60)
        assert done.state == "finished"
        assert done.result == {"description": "hello", "recorded_by": "note-worker"}
        assert done.worker == "note-worker" and done.attempts == 1
        assert done.started_at and done.ended_at and done.enqueued_at
        states: list[str] = []
        wait.until(lambda: states.extend(_states_from_channel(pubsub)) or "finished" in states,
                   what="the finished message")
        assert states == ["queued", "started", "finished"]
    finally:
        assert procs.stop(worker) == 0
        pubsub.close()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    finished = [line for line in lines if line.get("event") == "job finished"]
    assert finished and finished[0]["task_id"] == run.id
    assert isinstance(finished[0]["duration_ms"], float)
    assert all("level" in line and "timestamp" in line for line in lines)
    # rq's own records come out as JSON too
    assert any(line.get("logger", "").startswith("rq.worker") for line in lines)


def test_failing_job_is_recorded_with_its_reason(stack):
    # a job whose params slipped past validation (an older client, a hand-made job) fails cleanly
    with stack.db() as conn:
        conn.execute("INSERT INTO task_runs (id, type, params, state) VALUES ('bad1', 'note', '{}', 'queued')")
    tasks.queue(stack.redis, "control").enqueue("worker.jobs.note.run", kwargs={"task_id": "bad1",
                                                "params": {"description": 42}}, job_id="bad1")
    worker = procs.rq_worker(stack.env, stack.tmp / "w.log", "control", name="fail-worker", burst=True)
    assert worker.wait(60) == 0
    with stack.db() as conn:
        done = tasks.get(conn, "bad1")
    assert done.state == "failed"
    assert "description" in done.error
    assert "Traceback" in done.traceback["text"]
    assert done.worker == "fail-worker" and done.attempts == 1


def test_invalid_params_are_refused_at_submission(stack):
    with stack.db() as conn:
        try:
            tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": 42})
        except InputError as error:
            assert "description" in str(error)
        else:
            raise AssertionError("accepted a bad note")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM task_runs").fetchone()[0] == 0
    assert tasks.queue(stack.redis, "control").count == 0


class _Marker:
    """Unpickling this creates a file: what an attacker's payload would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickled_payload_is_refused_and_the_worker_goes_on(stack):
    marker = stack.tmp / "pwned"
    queue = Queue("control", connection=stack.redis)
    # a job whose data is a pickle (as `rq cron` or an attacker would write it)
    evil = Job.create("worker.jobs.note.run", connection=stack.redis, id="evil", kwargs={})
    queue.enqueue_job(evil)
    stack.redis.hset(evil.key, "data", zlib.compress(pickle.dumps(_Marker(marker), protocol=5)))
    with stack.db() as conn:
        good = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "after"})
    worker = procs.rq_worker(stack.env, stack.tmp / "w.log", "control", name="json-worker", burst=True)
    assert worker.wait(60) == 0
    assert not marker.exists()
    failed = FailedJobRegistry("control", connection=stack.redis)
    assert "evil" in failed.get_job_ids()
    from rq.serializers import JSONSerializer

    result = Job.fetch("evil", connection=stack.redis, serializer=JSONSerializer).latest_result()
    assert result is not None and "DeserializationError" in result.exc_string
    with stack.db() as conn:
        after = tasks.get(conn, good.id)
    assert after.state == "finished"
    assert "json-worker" == after.worker
    # one worker process ran both: it did not die on the bad payload
    log = (stack.tmp / "w.log").read_text()
    starts = [json.loads(line) for line in log.splitlines() if line.startswith("{") and "started with PID" in line]
    assert [entry["pid"] for entry in starts] == [worker.pid]
