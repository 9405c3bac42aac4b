"""Duplicate and reordered delivery with real worker processes: every job the system enqueues is
taken off its queue and delivered twice, in random order, to three agent-worker processes that
run the copies concurrently (so two copies of one job can run at the same time on two workers).
The final database equals a clean run's.

tests/worker/test_idempotency.py does the same in one process, one job at a time; this adds
concurrency between processes (the per-shard locks and the ingest's "already committed" path).
"""

from __future__ import annotations

import random
import time
import uuid

import psycopg
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from agentsys import keys, tasks
from agentsys.keys import Keys
from tests.reliability.conftest import FULL, compare, deadline_for, env_for, report, restart_workload
from tests.support.faults import Workers
from tests.support.workload import fingerprint

NORMAL = list(keys.QUEUES)
LOW = [keys.low(q) for q in keys.QUEUES]


def _take(redis, name: str) -> list[tuple[str, str, list, dict]]:
    """Pop every job id off a queue (atomically, one by one): (queue, func, args, kwargs) of each."""
    out = []
    for _ in range(100_000):
        raw = redis.lpop(f"rq:queue:{name}")
        if raw is None:
            return out
        job = Job.fetch(raw.decode(), connection=redis, serializer=JSONSerializer)
        out.append((name, job.func_name, list(job.args), dict(job.kwargs)))
    raise AssertionError("a queue kept filling")


def _idle(redis) -> bool:
    busy = any(redis.scard(f"rq:worker:{w.decode().split(':', 2)[-1]}:executions")
               for w in redis.smembers("rq:workers"))
    return not busy and not any(redis.llen(f"rq:queue:{q}") for q in NORMAL + LOW)


@pytest.mark.timeout(1200 if FULL else 120)
def test_every_job_twice_in_random_order_on_three_workers(pipeline_runs):
    w = restart_workload()
    clean = pipeline_runs.clean_run(w)
    url = pipeline_runs.clone(w)
    redis_url, redis = pipeline_runs.redis()
    prefix = f"dup_{uuid.uuid4().hex[:8]}"
    rng = random.Random(7)
    delivered = rounds = 0
    # the workers serve only the .low twins: everything the system enqueues waits on the normal queues
    worker_env = {"WORKER_QUEUES": ",".join(LOW), "MAINTENANCE_INTERVAL": "3600", "WORKER_WITH_SCHEDULER": "false"}
    try:
        with Workers(env_for(redis_url, url, prefix), pipeline_runs.tmp / prefix, 3, worker_env=worker_env) as group:
            group.wait_registered(redis)
            ids = w.submit(redis, url, Keys(prefix))
            deadline = time.monotonic() + deadline_for(w)
            with psycopg.connect(url, autocommit=True) as conn:
                while True:
                    assert time.monotonic() < deadline, f"not done after {rounds} rounds"
                    taken = [job for q in NORMAL for job in _take(redis, q)]
                    if not taken:
                        finished = conn.execute("SELECT count(*) FROM task_runs WHERE id = ANY(%s)"
                                                " AND state = 'finished'", (ids,)).fetchone()[0]
                        if finished == len(ids) and _idle(redis) and not any(redis.llen(f"rq:queue:{q}")
                                                                              for q in NORMAL):
                            break
                        time.sleep(0.05)
                        continue
                    copies = [job for job in taken for _ in range(2)]
                    rng.shuffle(copies)
                    for name, func, args, kwargs in copies:
                        tasks.queue(redis, keys.low(name)).enqueue(func, args=args, kwargs=kwargs)
                    delivered += len(copies)
                    rounds += 1
        got = fingerprint(url)
        report("duplicate_delivery", workload=w.describe(), jobs_delivered=delivered, rounds=rounds,
               row_deltas={t: got[t][0] - clean.fingerprint[t][0] for t in got})
        assert delivered >= 2 * (w.tasks + 2 * w.shards)
        compare(got, clean.fingerprint)
    finally:
        redis.flushdb()
        redis.close()
