"""Drive the pipeline deterministically: stage rows, run queued jobs in-process, compare databases."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from agentsys import keys, replay, tasks
from agentsys.models import TaskRun
from worker.app import SimpleAgentWorker

ALL_QUEUES = keys.ALL_QUEUES
EPOCH_US = 1_700_000_000_000_000


@dataclass
class Rows:
    symbols: np.ndarray
    ts: np.ndarray
    price: np.ndarray


def rows(series: dict[str, Any], *, start: int = 0, step_s: int = 60) -> Rows:
    """Rows for symbol -> prices, the k-th price of each at EPOCH + (start + k) * step."""
    s, t, p = [], [], []
    for symbol, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        s += [symbol] * len(values)
        t.append(EPOCH_US + (start + np.arange(len(values), dtype=np.int64)) * step_s * 1_000_000)
        p.append(values)
    return Rows(np.array(s, dtype=object), np.concatenate(t), np.concatenate(p))


def submit_rows(stack: Any, data: Rows, **params: Any) -> TaskRun:
    """What submit_replay does after parsing: stage the rows, submit the task."""
    import uuid

    from agentsys import task_params

    with stack.db() as conn:
        task_id = uuid.uuid4().hex
        replay.stage(conn, task_id, data)
        return tasks.submit(stack.redis, conn, stack.keys, type="replay",
                            params=task_params.validate("replay", params), task_id=task_id)


class QuietWorker(SimpleAgentWorker):
    configure_logs = False


def drain(stack: Any, *, max_jobs: int | None = None) -> None:
    """Run queued jobs (and the jobs they trigger) in this process until the queues are empty."""
    queues = [tasks.queue(stack.redis, q) for q in ALL_QUEUES]
    QuietWorker(queues, connection=stack.redis).work(burst=True, max_jobs=max_jobs)


def drain_shuffled_twice(stack: Any, *, seed: int = 0, rounds: int = 200) -> int:
    """Run every job twice, in random order, generation by generation; returns jobs run."""
    rng = random.Random(seed)
    ran = 0
    for _ in range(rounds):
        pending: list[tuple[str, Job]] = []
        for name in ALL_QUEUES:
            q = Queue(name, connection=stack.redis, serializer=JSONSerializer)
            for job in q.get_jobs():
                pending.append((name, job))
            q.empty()
        if not pending:
            return ran
        copies = []
        for name, job in pending:
            for _ in range(2):
                copies.append((name, job.func_name, job.args, job.kwargs))
        rng.shuffle(copies)
        for name, func, args, kwargs in copies:
            q = tasks.queue(stack.redis, name)
            q.enqueue(func, args=args, kwargs=kwargs)
            QuietWorker([q], connection=stack.redis).work(burst=True, max_jobs=1)
            ran += 1
    raise AssertionError("jobs kept coming")


TABLES = {
    "prices": "SELECT symbol, ts, price FROM prices ORDER BY symbol, ts",
    "indicators": "SELECT symbol, ts, price, ema_fast, ema_mid, ema_slow, state FROM indicators ORDER BY symbol, ts",
    "bang_events": "SELECT symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow FROM bang_events"
                   " ORDER BY symbol, ts",
    "progress": "SELECT agent, symbol, last_ts, n, seed_sum, ema_fast, ema_mid, ema_slow, state FROM progress"
                " ORDER BY agent, symbol",
    "symbols": "SELECT symbol, shard, ema_fast, ema_mid, ema_slow, source FROM symbols ORDER BY symbol",
}


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that matters, for row-by-row comparison of two runs."""
    with psycopg.connect(url) as conn:
        out = {name: conn.execute(q).fetchall() for name, q in TABLES.items()}  # type: ignore[arg-type]
        out["tasks"] = conn.execute("SELECT type, state, progress, result, error FROM task_runs"
                                    " ORDER BY created_at, id").fetchall()
    return out
