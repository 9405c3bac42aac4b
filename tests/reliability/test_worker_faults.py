"""Worker faults: a replay over many shards on three agent-worker processes while a random
worker is SIGKILLed every few seconds, alternately its job process and the worker itself
(restarted under its name, as supervisord would). The final database must equal a clean
run's, table by table (prices, indicators, bang_events, progress, task states and targets).
"""

from __future__ import annotations

import random
import statistics
import time
import uuid

import psycopg
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from agentsys.keys import Keys
from tests.reliability.conftest import FULL, QUIET, compare, deadline_for, env_for, kill_workload, report
from tests.support.faults import Workers, kill_loop
from tests.support.workload import measured_ticks_per_s

MIN_KILLS = 20 if FULL else 5
SAME_NAME = True
"""Restart a killed worker under its own name (supervisord) or a new one."""


def _finished(url: str, ids: list[str]):
    last = [0.0]

    def check() -> bool:
        if time.monotonic() - last[0] < 0.5:
            return False
        last[0] = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            n = conn.execute("SELECT count(*) FROM task_runs WHERE id = ANY(%s) AND state IN"
                             " ('finished', 'failed', 'canceled', 'stopped')", (ids,)).fetchone()[0]
        return n == len(ids)

    return check


def _recovered_after(redis, kill) -> float | None:
    """Seconds from a job kill to the end of the same job's successful rerun (None if not rerun)."""
    if kill.job_id is None:
        return None
    try:
        job = Job.fetch(kill.job_id, connection=redis, serializer=JSONSerializer)
    except Exception:
        return None
    if job.get_status() != "finished" or job.ended_at is None:
        return None
    return max(0.0, job.ended_at.timestamp() - kill.at)


@pytest.mark.timeout(1800 if FULL else 170)
def test_sigkilled_workers_lose_and_double_nothing(pipeline_runs):
    rate, source = pipeline_runs.measured_rate() or measured_ticks_per_s()
    w = kill_workload(rate)
    print(f"workload: {w.describe()}; throughput {rate:,.0f} symbol-ticks/s ({source})", flush=True)
    clean = pipeline_runs.clean_run(w)
    # about three kills per MIN_KILLS share of the clean run's time: the faulted run lasts longer
    interval = min(4.0, max(0.3, clean.seconds / (3 * MIN_KILLS)))
    url = pipeline_runs.clone(w)
    redis_url, redis = pipeline_runs.redis()
    prefix = f"kill_{uuid.uuid4().hex[:8]}"
    rng = random.Random(20261124)
    try:
        with Workers(env_for(redis_url, url, prefix), pipeline_runs.tmp / prefix, 3, worker_env=QUIET) as workers:
            workers.wait_registered(redis)
            began = time.monotonic()
            ids = w.submit(redis, url, Keys(prefix))
            workers.same_name = SAME_NAME
            kills = kill_loop(workers, redis, url, rng=rng, interval=interval, done=_finished(url, ids),
                              timeout=deadline_for(w))
            seconds = time.monotonic() - began
            assert workers.alive()
        from tests.support.workload import fingerprint

        got = fingerprint(url)
        with psycopg.connect(url, autocommit=True) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM task_runs GROUP BY state").fetchall())
        job_kills = [k for k in kills if k.kind == "job"]
        worker_kills = [k for k in kills if k.kind == "worker"]
        reruns = [r for r in (_recovered_after(redis, k) for k in job_kills) if r is not None]
        delta = {t: got[t][0] - clean.fingerprint[t][0] for t in got}
        report("worker_kills", workload=w.describe(), kills=len(kills), job_kills=len(job_kills),
               worker_kills=len(worker_kills), interval_s=round(interval, 2), seconds=round(seconds, 1),
               clean_seconds=round(clean.seconds, 1), task_states=states, row_deltas=delta,
               job_rerun_s_max=round(max(reruns), 2) if reruns else None, job_reruns=len(reruns),
               job_rerun_s_median=round(statistics.median(reruns), 2) if reruns else None,
               worker_back_s_max=round(max(k.back_after or 0 for k in worker_kills), 2) if worker_kills else None,
               rows={t: got[t][0] for t in ("prices", "indicators", "bang_events")})
        assert len(kills) >= MIN_KILLS, f"only {len(kills)} kills before the workload ended"
        assert len(job_kills) >= MIN_KILLS // 2 and len(worker_kills) >= MIN_KILLS // 2
        assert states == {"finished": w.tasks}, states
        compare(got, clean.fingerprint)
        assert got["bang_events"][0] > 0 and got["staged_prices"][0] == 0
    finally:
        redis.flushdb()
        redis.close()
