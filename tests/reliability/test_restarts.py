"""Redis (append-only persistence on) and PostgreSQL restarted mid-run, on servers this module
starts itself: the workers keep running, transient errors come back as RQ retries with
backoff (the workers run RQ's scheduler), the sweep re-triggers lagging shards, progress
resumes within 30 s of each restart, and the final database equals a clean run's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from agentsys import migrate
from agentsys.keys import Keys
from postgres_service import cluster
from redis_service import server as redis_server
from tests.reliability.conftest import FULL, compare, deadline_for, env_for, report, restart_workload
from tests.support.faults import Workers
from tests.support.servers import with_database
from tests.support.wait import until
from tests.support.workload import fingerprint, wait_finished

RESTARTS = 3 if FULL else 1
RECOVERY_LIMIT_S = 30.0
WORKER_ENV = {"MAINTENANCE_INTERVAL": "2", "WORKER_WITH_SCHEDULER": "true"}


@dataclass
class OwnServers:
    """A redis-server and a PostgreSQL cluster this module started, restartable on their port."""

    root: Path
    redis: redis_server.RedisServer
    postgres: cluster.PostgresServer
    template: str = "restart_tpl"

    def restart_redis(self, noticed: Callable[[], bool]) -> float:
        """Stop Redis (it flushes its append-only file); once the workers noticed, start it on the same
        folder and port. Returns when it answers again."""
        port = self.redis.port
        self.redis.stop()
        until(noticed, timeout=15, interval=0.05, what="a worker to notice Redis is gone")
        self.redis = redis_server.start(self.root / "redis", port=port, appendonly=True)
        return time.monotonic()

    def restart_postgres(self, noticed: Callable[[], bool]) -> float:
        """Fast shutdown (sessions are cut, open transactions roll back); once the workers noticed,
        start it again."""
        port = self.postgres.port
        self.postgres.stop()
        until(noticed, timeout=15, interval=0.05, what="a worker to notice PostgreSQL is gone")
        self.postgres = cluster.start(self.root / "postgres", port=port, fast=True)
        return time.monotonic()


@pytest.fixture(scope="module")
def own() -> Iterator[OwnServers]:
    root = Path(tempfile.mkdtemp(prefix="agentsys-restarts-"))
    root.chmod(0o755)
    rs = redis_server.start(root / "redis", appendonly=True)
    try:
        ps = cluster.start(root / "postgres", fast=True)
    except BaseException:
        rs.stop()
        raise
    servers = OwnServers(root, rs, ps)
    try:
        cluster.create_database(ps.url(), servers.template)
        url = with_database(ps.url(), servers.template)
        migrate.migrate(url)
        restart_workload().prepare(url)
        yield servers
    finally:
        servers.redis.stop()
        servers.postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def _progress(url: str) -> float | None:
    """A figure every agent commit moves (the sum of all progress marks); None while unreachable."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT COALESCE(sum(extract(epoch FROM last_ts)), 0)"
                               " + (SELECT count(*) FROM task_runs WHERE state = 'finished') FROM progress").fetchone()
            return float(row[0]) if row else 0.0
    except psycopg.OperationalError:
        return None


def _advanced(url: str, since: float | None) -> Callable[[], bool]:
    return lambda: (now := _progress(url)) is not None and (since is None or now > since)


NOTICED = {
    "redis": ("could not connect to Redis", "Redis unreachable", "transient error; will retry"),
    "postgres": ("transient error; will retry",),
}
"""Worker log lines that show a worker met the outage."""


def _run_with_restarts(own: OwnServers, pipeline_runs, restart: Callable[[Callable[[], bool]], float],
                       label: str) -> None:
    w = restart_workload()
    clean = pipeline_runs.clean_run(w)
    name = f"r_{uuid.uuid4().hex[:10]}"
    cluster.create_database(own.postgres.url(), name, template=own.template)
    url = with_database(own.postgres.url(), name)
    redis_url = own.redis.url(1)
    Redis.from_url(redis_url).flushdb()
    prefix = f"{label}_{uuid.uuid4().hex[:6]}"
    recoveries: list[float] = []
    outages: list[float] = []
    try:
        with Workers(env_for(redis_url, url, prefix), pipeline_runs.tmp / prefix, 3, worker_env=WORKER_ENV) as workers:
            redis = Redis.from_url(redis_url)
            try:
                workers.wait_registered(redis)
                pids = workers.pids()
                began = time.monotonic()
                ids = w.submit(redis, url, Keys(prefix))
                total = float(w.size)
                for i in range(RESTARTS):
                    # restart once some (more) work has committed, well before the end
                    share = (i + 1) / (RESTARTS + 2)
                    until(lambda s=share: _indicator_share(url) >= s * total, timeout=deadline_for(w),
                          interval=0.1, what=f"{share:.0%} of the indicator rows before restart {i + 1}")
                    before = _progress(url)
                    seen = sum(workers.log_counts(*NOTICED[label]).values())
                    down = time.monotonic()
                    up = restart(lambda seen=seen: sum(workers.log_counts(*NOTICED[label]).values()) > seen)
                    outages.append(up - down)
                    until(_advanced(url, before), timeout=RECOVERY_LIMIT_S, interval=0.05,
                          what=f"progress after {label} restart {i + 1}")
                    recoveries.append(time.monotonic() - up)
                    print(f"{label} restart {i + 1}: down {up - down:.2f}s, progress again {recoveries[-1]:.2f}s"
                          " after it was back", flush=True)
                wait_finished(url, ids, timeout=deadline_for(w))
                seconds = time.monotonic() - began
                assert workers.pids() == pids and workers.alive(), "a worker died: they must ride out the restart"
                failed = {q: redis.zcard(f"rq:failed:{q}") for q in ("price", "indicator", "bang", "control")}
                events = workers.log_counts("transient error; will retry", "Redis unreachable",
                                            "could not connect to Redis", "put back on its queue",
                                            "ended without recording")
            finally:
                redis.close()
        got = fingerprint(url)
        report(f"{label}_restarts", workload=w.describe(), restarts=len(recoveries),
               outage_s=[round(x, 2) for x in outages], recovery_s=[round(x, 2) for x in recoveries],
               seconds=round(seconds, 1), clean_seconds=round(clean.seconds, 1), failed_jobs=failed, log_events=events,
               row_deltas={t: got[t][0] - clean.fingerprint[t][0] for t in got})
        assert len(recoveries) == RESTARTS and max(recoveries) <= RECOVERY_LIMIT_S
        compare(got, clean.fingerprint)
    finally:
        cluster.drop_database(own.postgres.url(), name)


def _indicator_share(url: str) -> float:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT COALESCE(sum(n), 0) FROM progress WHERE agent = 'indicator'").fetchone()
            return float(row[0]) if row else 0.0
    except psycopg.OperationalError:
        return 0.0


@pytest.mark.timeout(1200 if FULL else 120)
def test_redis_restart_mid_run(own, pipeline_runs):
    _run_with_restarts(own, pipeline_runs, own.restart_redis, "redis")


@pytest.mark.timeout(1200 if FULL else 120)
def test_postgres_restart_mid_run(own, pipeline_runs):
    _run_with_restarts(own, pipeline_runs, own.restart_postgres, "postgres")
