"""Reliability suite: small sizes inside ``make test``, full sizes with RELIABILITY_FULL=1
(``make test-reliability``). Every fault touches only servers and processes a test started.

Results of each run are appended to ``.bench/reliability.jsonl`` (the figures of
docs/reliability.md come from there).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis

from agentsys.keys import Keys
from postgres_service import cluster
from tests.support.faults import Workers
from tests.support.servers import Servers, with_database, with_db
from tests.support.workload import Workload, fingerprint, measured_ticks_per_s, wait_finished

FULL = os.environ.get("RELIABILITY_FULL", "") not in ("", "0", "false")
"""Full sizes (make test-reliability) instead of the small ones of make test."""
RESULTS = Path(".bench/reliability.jsonl")


def report(name: str, **figures: object) -> None:
    """Print a result line and keep it in .bench/reliability.jsonl."""
    row = {"name": name, "full": FULL, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    print(json.dumps(row), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(row) + "\n")


SMALL = Workload(symbols=1500, ticks=400, shard_size=50, tasks=10, seed=1)
"""The small workload every fault test of make test shares (one clean run for all)."""


KILL_RUN_S = 120
"""Seconds the full kill workload lasts, without faults, at the measured throughput."""


def kill_workload(rate: float | None = None) -> Workload:
    """Small: 600k symbol-ticks. Full: KILL_RUN_S seconds at ``rate`` (symbol-ticks/s), by default
    the throughput measured on these servers by this session's clean runs, else ``make bench``'s."""
    if not FULL:
        return SMALL
    ticks = 600
    symbols = -(-int(KILL_RUN_S * (rate or measured_ticks_per_s()[0])) // ticks)
    return Workload(symbols=symbols, ticks=ticks, shard_size=100, tasks=max(10, symbols // 250), seed=1)


def restart_workload() -> Workload:
    """The workload of the restart and duplicate-delivery tests (1.6M symbol-ticks in full)."""
    if not FULL:
        return SMALL
    return Workload(symbols=4000, ticks=400, shard_size=100, tasks=16, seed=2)


@dataclass
class Run:
    fingerprint: dict[str, tuple[int, int]]
    seconds: float


@dataclass
class PipelineRuns:
    """Workloads prepared once per session on the session servers, cloned per run; clean runs cached."""

    servers: Servers
    tmp: Path
    templates: dict[Workload, str] = field(default_factory=dict)
    clean: dict[Workload, Run] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    def template(self, w: Workload) -> str:
        if w not in self.templates:
            name = f"wl_{uuid.uuid4().hex[:10]}"
            cluster.create_database(self.servers.pg_url, name, template=self.servers.template)
            self.made.append(name)
            began = time.monotonic()
            w.prepare(with_database(self.servers.pg_url, name))
            print(f"staged {w.describe()} in {time.monotonic() - began:.1f}s", flush=True)
            self.templates[w] = name
        return self.templates[w]

    def clone(self, w: Workload) -> str:
        """A fresh database holding the staged workload; returns its URL."""
        name = f"run_{uuid.uuid4().hex[:10]}"
        cluster.create_database(self.servers.pg_url, name, template=self.template(w))
        self.made.append(name)
        return with_database(self.servers.pg_url, name)

    def redis(self) -> tuple[str, Redis]:
        url = with_db(self.servers.redis_url, self.servers.next_redis_db())
        client = Redis.from_url(url)
        client.flushdb()
        return url, client

    def clean_run(self, w: Workload, *, workers: int = 3) -> Run:
        """The workload on ``workers`` agent-worker processes with no fault (cached per workload)."""
        if w not in self.clean:
            url = self.clone(w)
            redis_url, redis = self.redis()
            prefix = f"clean_{uuid.uuid4().hex[:8]}"
            env = env_for(redis_url, url, prefix)
            try:
                with Workers(env, self.tmp / prefix, workers, worker_env=QUIET) as group:
                    group.wait_registered(redis)
                    began = time.monotonic()
                    ids = w.submit(redis, url, Keys(prefix))
                    ended = wait_finished(url, ids, timeout=deadline_for(w))
                seconds = ended - began
                self.clean[w] = Run(fingerprint(url), seconds)
                report("clean_run", workload=w.describe(), seconds=round(seconds, 1),
                       ticks_per_s=round(w.size / seconds))
            finally:
                redis.flushdb()
                redis.close()
        return self.clean[w]

    def measured_rate(self) -> tuple[float, str] | None:
        """Symbol-ticks/s of the largest clean run so far, on these servers with three workers."""
        if not self.clean:
            return None
        w, run = max(self.clean.items(), key=lambda item: item[0].size)
        return w.size / run.seconds, f"clean run of {w.describe()} in this session"

    def close(self) -> None:
        for name in reversed(self.made):
            cluster.drop_database(self.servers.pg_url, name)


QUIET = {"LOG_LEVEL": "INFO", "MAINTENANCE_INTERVAL": "2", "WORKER_WITH_SCHEDULER": "false"}
"""Worker settings of the fault tests: sweeps every 2 s; no scheduler child (crash retries are immediate)."""


def env_for(redis_url: str, database_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "KEY_PREFIX": prefix, "ENVIRONMENT": "test",
            "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


def deadline_for(w: Workload) -> float:
    """Seconds a run may take at most: generous against the assumed throughput."""
    rate, _ = measured_ticks_per_s()
    return max(120.0, 8 * w.size / rate)


@pytest.fixture(scope="session")
def pipeline_runs(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineRuns]:
    runs = PipelineRuns(servers, tmp_path_factory.mktemp("reliability"))
    try:
        yield runs
    finally:
        runs.close()


def compare(got: dict[str, tuple[int, int]], clean: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Rows lost (negative) or extra (positive) per table; fails on any difference."""
    delta = {t: got[t][0] - clean[t][0] for t in clean}
    differ = [t for t in clean if got[t] != clean[t]]
    assert not differ, f"tables differ from the clean run: {differ}; row count deltas {delta}"
    return delta
