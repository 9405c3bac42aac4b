"""What every benchmark needs: servers, worker processes, CPU accounting, results."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis import Redis

from agentsys import migrate
from postgres_service import cluster
from redis_service import server as redis_server

RESULTS = Path(".bench/results.jsonl")
VENV_BIN = Path(sys.executable).parent


@dataclass
class Servers:
    redis_url: str
    pg_url: str
    redis_pid: int | None
    pg_pid: int | None
    template: str


@contextlib.contextmanager
def servers(*, own: bool = False, pg_options: tuple[str, ...] = ()) -> Iterator[Servers]:
    """REDIS_URL / DATABASE_URL when set (unless ``own``), else throwaway servers with production settings.

    CPU figures are read only for servers started here (their pid is None otherwise).
    """
    tmp = Path(tempfile.mkdtemp(prefix="agentsys-bench-"))
    tmp.chmod(0o755)
    stops = []
    try:
        if os.environ.get("REDIS_URL") and not own:
            redis_url, redis_pid = os.environ["REDIS_URL"], None
        else:
            rs = redis_server.start(tmp / "redis", appendonly=True)
            stops.append(rs.stop)
            redis_url, redis_pid = rs.url(0), rs.process.pid
        if os.environ.get("DATABASE_URL") and not own:
            pg_url, pg_pid = os.environ["DATABASE_URL"], None
        else:
            ps = cluster.start(tmp / "postgres", extra=("-c", "shared_buffers=512MB", "-c", "max_wal_size=4GB",
                                                               *pg_options))
            stops.append(ps.stop)
            pg_url, pg_pid = ps.url("postgres"), ps.process.pid
        template = f"bench_tpl_{os.getpid()}"
        cluster.drop_database(pg_url, template)
        cluster.create_database(pg_url, template)
        migrate.migrate(with_database(pg_url, template))
        stops.append(lambda: cluster.drop_database(pg_url, template))
        yield Servers(redis_url, pg_url, redis_pid, pg_pid, template)
    finally:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        shutil.rmtree(tmp, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database(s: Servers, name: str) -> Iterator[str]:
    cluster.drop_database(s.pg_url, name)
    cluster.create_database(s.pg_url, name, template=s.template)
    try:
        yield with_database(s.pg_url, name)
    finally:
        cluster.drop_database(s.pg_url, name)


def cpu_seconds(pid: int | None) -> float:
    """CPU time of a process, its live children and the children it has reaped."""
    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return total
    except psutil.Error:
        return 0.0


def tree_rss(pid: int) -> tuple[int, int]:
    """RSS and PSS of a process with its children (RSS counts pages shared after fork twice)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        rss = pss = 0
        for proc in procs:
            info = proc.memory_full_info()
            rss += info.rss
            pss += info.pss
        return rss, pss
    except psutil.Error:
        return 0, 0


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]]
    peak_rss: dict[int, int] = field(default_factory=dict)
    peak_pss: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        while not self._stop.wait(0.05):
            for p in self.procs:
                rss, pss = tree_rss(p.pid)
                self.peak_rss[p.pid] = max(self.peak_rss.get(p.pid, 0), rss)
                self.peak_pss[p.pid] = max(self.peak_pss.get(p.pid, 0), pss)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)


@contextlib.contextmanager
def workers(n: int, env: dict[str, str], log_dir: Path, *, args: tuple[str, ...] = ()) -> Iterator[Workers]:
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(n):
        out = open(log_dir / f"worker-{i}.log", "ab")
        procs.append(subprocess.Popen([str(VENV_BIN / "agent-worker"), "--name", f"bench-{i}", *args],
                                      env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        out.close()
    group = Workers(procs)
    sampler = threading.Thread(target=group.sample, daemon=True)
    sampler.start()
    try:
        redis = Redis.from_url(env["REDIS_URL"])
        deadline = time.monotonic() + 30
        while redis.scard("rq:workers") < n:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not register")
            time.sleep(0.05)
        redis.close()
        yield group
    finally:
        group._stop.set()
        sampler.join()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def record(name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    entry = {"name": name, "value": round(value, 3), "unit": unit, **extra}
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(entry) + "\n")
    print(f"  {name:<44} {entry['value']:>14,} {unit}", flush=True)
    return entry


def last_recorded(name: str, results: Path = RESULTS) -> float | None:
    """The newest value ``make bench`` recorded under ``name`` (None when never measured)."""
    found = None
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("name") == name:
                found = float(row["value"])
    return found


def median(values: list[float]) -> float:
    return float(statistics.median(values))
