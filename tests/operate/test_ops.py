"""``agentctl worker start|stop`` and ``agentctl status``, as library functions (agentctl.processes,
agentsys.status, agentctl.output)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from rq import Worker
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from agentctl import output, processes
from agentsys import flags, status, tasks
from agentsys.schedules import ScheduleSpec, put_schedule
from tests.support import wait
from tests.support.pipeline import drain, rows, submit_rows

WORKER_ENV = {"WORKER_TTL": "20", "MAINTENANCE_INTERVAL": "1", "WORKER_WITH_SCHEDULER": "false"}


def _registered(stack, name: str) -> bool:
    return any(w.name == name for w in Worker.all(connection=stack.redis, serializer=JSONSerializer))


def test_start_runs_a_detached_worker_and_stop_ends_it(stack):
    started = processes.start_worker(name="extra-1", queues="control", folder=stack.tmp, env={**stack.env, **WORKER_ENV})
    try:
        assert started.pidfile.read_text().strip() == str(started.pid)
        assert os.getpgid(started.pid) != os.getpgid(0)  # its own session: a Ctrl-C here does not reach it
        wait.until(lambda: _registered(stack, "extra-1"), what="the worker to register")
        assert [w["name"] for w in processes.started_workers(stack.tmp)] == ["extra-1"]
        with pytest.raises(processes.OpsError, match="already running"):
            processes.start_worker(name="extra-1", folder=stack.tmp, env=stack.env)
        with stack.db() as conn:
            run = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "via extra-1"})
            assert tasks.wait(conn, run.id, timeout=30).worker == "extra-1"
    finally:
        stopped = processes.stop_worker(name="extra-1", folder=stack.tmp, timeout=30)
    assert stopped.how == "terminated" and stopped.pid == started.pid
    assert not started.pidfile.exists() and not _registered(stack, "extra-1")
    assert '"service": "worker"' in started.log.read_text()  # JSON lines in the run folder
    assert processes.stop_worker(name="extra-1", folder=stack.tmp).how == "not running"


def test_stop_kills_a_worker_that_does_not_finish_in_time_and_the_work_is_redone(stack):
    blocker = psycopg.connect(stack.database_url)
    blocker.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")
    try:
        run = submit_rows(stack, rows({"OPS0": np.linspace(1, 2, 80)}))
        processes.start_worker(name="stuck-1", folder=stack.tmp, env={**stack.env, **WORKER_ENV})
        started = StartedJobRegistry("indicator", connection=stack.redis)
        wait.until(lambda: started.count == 1, timeout=30, what="the indicator job to start")
        stopped = processes.stop_worker(name="stuck-1", folder=stack.tmp, timeout=1.0)
        assert stopped.how == "killed" and 1.0 <= stopped.seconds < 15
    finally:
        blocker.close()
    # a worker started again under the same name takes over at once and redoes the killed job
    processes.start_worker(name="stuck-1", folder=stack.tmp, env={**stack.env, **WORKER_ENV})
    try:
        with stack.db() as conn:
            assert tasks.wait(conn, run.id, timeout=60).state == "finished"
            assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 80
    finally:
        processes.stop_worker(name="stuck-1", folder=stack.tmp)


def test_bad_names_are_refused(stack):
    with pytest.raises(processes.OpsError, match="bad worker name"):
        processes.start_worker(name="../evil", folder=stack.tmp)


def test_status_shows_queues_workers_schedules_flags_and_bangs(stack):
    series = {"ST0": 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.02, 400)))}
    submit_rows(stack, rows(series))
    drain(stack)
    put_schedule(stack.redis, stack.keys, "tick", ScheduleSpec(type="note", params={"description": "t"},
                                                               interval_s=60))
    stack.redis.set(stack.keys.schedule_last("tick"), int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()))
    stack.redis.set(stack.keys.scheduler_lock(), "scheduler-a/1234", px=5000)
    flags.set_enabled(stack.redis, stack.keys, "bang", False)
    tasks.queue(stack.redis, "price").enqueue("worker.agents.price.run", args=(0,))
    with stack.db() as conn:
        data = status.overview(stack.redis, conn, stack.keys, bangs=3)
    price = next(q for q in data["queues"] if q["name"] == "price")
    assert price["depth"] == 1 and price["finished"] >= 1
    assert data["schedules"]["leader"] == "scheduler-a/1234"
    assert data["schedules"]["items"][0]["last_tick"] == "2026-01-01T00:00:00+00:00"
    assert data["flags"]["agents"] == {"price": True, "indicator": True, "bang": False}
    assert len(data["bangs"]) == 3 and data["bangs"][0]["symbol"] == "ST0"
    text = output.status(data)
    for heading in ("QUEUES", "WORKERS", "SCHEDULES (leader: scheduler-a/1234)", "FLAGS", "LAST BANGS", "bang: OFF"):
        assert heading in text
    assert status.overview(stack.redis, None, stack.keys)["bangs"] is None


def test_status_lists_workers_with_their_heartbeat_stats(stack):
    processes.start_worker(name="seen-1", queues="price", folder=stack.tmp, env={**stack.env, **WORKER_ENV})
    try:
        wait.until(lambda: stack.redis.exists(stack.keys.worker_stats("seen-1")), timeout=30,
                   what="the worker's stats hash")
        worker = next(w for w in status.overview(stack.redis, None, stack.keys)["workers"] if w["name"] == "seen-1")
        assert worker["queues"] == ["price", "price.low"] and worker["rss_bytes"] > 10 * 2**20
        assert worker["heartbeat_age_s"] is not None and worker["heartbeat_age_s"] < 30
    finally:
        processes.stop_worker(name="seen-1", folder=stack.tmp)
