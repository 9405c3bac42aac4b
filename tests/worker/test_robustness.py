"""Retries with backoff, warm and cold shutdown, queue selection, heartbeats."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import psycopg
import pytest
from rq import Retry
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from agentsys import tasks
from tests.support import procs, wait
from tests.support.pipeline import rows, submit_rows
from worker.agents.base import backoff


def test_backoff_doubles_with_jitter_and_a_cap():
    for _ in range(50):
        got = backoff(retries=8, base=1.0, cap=60.0)
        assert len(got) == 8 and all(isinstance(v, int) and v >= 1 for v in got)
        for i, v in enumerate(got):
            assert 0.5 * min(60, 2**i) - 1 <= v <= 1.5 * min(60, 2**i) + 1
    assert len({tuple(backoff()) for _ in range(20)}) > 1  # jittered


def test_a_transient_database_error_schedules_a_retry(stack, monkeypatch):
    """PostgreSQL unreachable mid-job: the job returns a Retry with backoff, it does not fail."""
    from worker.agents import indicator

    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    from worker.settings import get_settings

    get_settings.cache_clear()
    q = tasks.queue(stack.redis, "indicator")
    job = q.enqueue("worker.agents.indicator.run", 0)
    from tests.support.pipeline import QuietWorker

    QuietWorker([q], connection=stack.redis).work(burst=True)
    job = Job.fetch(job.id, connection=stack.redis, serializer=JSONSerializer)
    assert job.get_status() == "scheduled"
    assert job.number_of_retries == 1
    assert indicator.run.__name__ == "run"


def _slow_indicator_job(stack) -> tuple[psycopg.Connection, object]:
    blocker = psycopg.connect(stack.database_url)
    blocker.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")
    rng = np.random.default_rng(1)
    run = submit_rows(stack, rows({"T0": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 100)))}))
    return blocker, run


@pytest.mark.parametrize("twice", [False, True], ids=["warm", "cold"])
def test_sigterm_finishes_the_job_and_a_second_stops_at_once(stack, twice):
    blocker, run = _slow_indicator_job(stack)
    worker = procs.agent_worker(stack.env, stack.tmp / "w.log", name="term-1")
    try:
        started = StartedJobRegistry("indicator", connection=stack.redis)
        wait.until(lambda: started.count == 1, what="the indicator job to start")
        worker.send_signal(signal.SIGTERM)
        if twice:
            wait.until(lambda: "warm shut down requested" in (stack.tmp / "w.log").read_text(), what="warm shutdown logged")
            # RQ ignores a second signal within a second of the first (duplicate delivery by process pools)
            first = time.monotonic()
            wait.until(lambda: time.monotonic() - first > 1.1, what="RQ's duplicate-signal window to pass")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0  # a cold stop does not wait for the blocked job
            blocker.rollback()
            with stack.db() as conn:
                assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 0
            # the interrupted work is redone by the next worker (its sweep sees the lag)
            rescuer = procs.agent_worker(stack.env, stack.tmp / "w2.log", name="term-2")
            try:
                with stack.db() as conn:
                    assert tasks.wait(conn, run.id, timeout=60).state == "finished"
            finally:
                assert procs.stop(rescuer) == 0
        else:
            with pytest.raises(Exception):
                worker.wait(1)  # still running: it finishes its job first
            blocker.rollback()
            assert worker.wait(30) == 0
            with stack.db() as conn:
                assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 100
    finally:
        blocker.close()
        procs.stop(worker)


def test_worker_queues_selects_agents(stack):
    submit_rows(stack, rows({"Q0": np.linspace(1, 2, 60)}))
    worker = procs.agent_worker(stack.env, stack.tmp / "w.log", name="price-only", queues="price")
    try:
        with stack.db() as conn:
            wait.until(lambda: conn.execute("SELECT count(*) FROM prices").fetchone()[0] == 60 or conn.rollback(),
                       what="prices stored")
        # the price job triggered the indicator agent, whose job waits for an indicator worker
        wait.until(lambda: tasks.queue(stack.redis, "indicator").count == 1, what="the indicator job queued")
        with stack.db() as conn:
            assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 0
    finally:
        assert procs.stop(worker) == 0


def test_heartbeats_carry_resources_and_counters(stack):
    pubsub = stack.redis.pubsub()
    pubsub.subscribe(stack.keys.channel_heartbeats)
    worker = procs.agent_worker(stack.env, stack.tmp / "w.log", name="beat-1")
    try:
        message = wait.until(lambda: pubsub.get_message(timeout=0.1, ignore_subscribe_messages=True),
                             what="a heartbeat")
        beat = json.loads(message["data"])
        assert beat["worker"] == "beat-1" and beat["rss_bytes"] > 10_000_000
        assert {"cpu_seconds", "jobs_done", "failures", "last_job_ms", "queues", "state"} <= set(beat)
    finally:
        procs.stop(worker)
        pubsub.close()


def test_retry_object_round_trips_through_json():
    assert Retry(max=3, interval=[1, 2, 4]).intervals == [1, 2, 4]
