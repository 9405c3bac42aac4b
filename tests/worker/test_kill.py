"""SIGKILL mid-job (the job process, and the worker too): after recovery, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import uuid

import numpy as np
import psycopg
from rq.registry import StartedJobRegistry

from agentsys import tasks
from postgres_service import cluster
from tests.support import procs, wait
from tests.support.pipeline import drain, rows, snapshot, submit_rows
from tests.support.servers import with_database


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    return {f"K{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300))) for i in range(4)}


def _job_backend(stack) -> tuple[int, object] | None:
    """PID and transaction start of the job process blocked inside its open transaction."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT application_name, xact_start FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'agentsys-%%' AND wait_event_type = 'Lock' AND xact_start IS NOT NULL"
        ).fetchone()
    return (int(row[0].split("-")[1]), row[1]) if row else None


def _clean_run(stack, servers, monkeypatch) -> dict:
    name = f"c_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, name, template=servers.template)
    try:
        stack.redis.flushdb()
        stack.database_url = with_database(servers.pg_url, name)
        monkeypatch.setenv("DATABASE_URL", stack.database_url)
        from worker.settings import get_settings

        get_settings.cache_clear()
        submit_rows(stack, rows(_data()))
        drain(stack)
        return snapshot(stack.database_url)
    finally:
        cluster.drop_database(servers.pg_url, name)


def _kill_mid_job(stack, *, kill_parent: bool):
    blocker = psycopg.connect(stack.database_url)
    blocker.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")
    worker = procs.agent_worker(stack.env, stack.tmp / "w1.log", name="victim")
    second = None
    try:
        run = submit_rows(stack, rows(_data()))
        started = StartedJobRegistry("indicator", connection=stack.redis)
        wait.until(lambda: started.count == 1, what="the indicator job in the started registry")
        pid, xact_start = wait.until(lambda: _job_backend(stack), what="the job's transaction to be open")
        assert pid != worker.pid and xact_start is not None
        if kill_parent:
            os.kill(worker.pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        worker.wait(20) if kill_parent else None
        blocker.rollback()
        if kill_parent:
            second = procs.agent_worker(stack.env, stack.tmp / "w2.log", name="rescuer")
        with stack.db() as conn:
            done = tasks.wait(conn, run.id, timeout=90)
        assert done.state == "finished"
        return snapshot(stack.database_url)
    finally:
        blocker.close()
        for proc in (worker, second):
            if proc is not None:
                procs.stop(proc)


def test_kill_job_process_with_open_transaction(stack, servers, monkeypatch):
    got = _kill_mid_job(stack, kill_parent=False)
    clean = _clean_run(stack, servers, monkeypatch)
    for table in ("prices", "indicators", "bang_events", "progress"):
        assert got[table] == clean[table], table
    assert clean["bang_events"]


def test_kill_worker_and_job_process(stack, servers, monkeypatch):
    got = _kill_mid_job(stack, kill_parent=True)
    clean = _clean_run(stack, servers, monkeypatch)
    for table in ("prices", "indicators", "bang_events", "progress"):
        assert got[table] == clean[table], table
