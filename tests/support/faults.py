"""Fault injection on processes a test started: SIGKILL ``agent-worker`` processes and their job
processes, by PID, and replace a killed worker as supervisord would.

A job process (RQ's work horse) is a fork of its worker; it is told apart from any other
child by its PostgreSQL session, whose ``application_name`` is ``agentsys-<pid>``.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from redis import Redis

from tests.support import procs


@dataclass
class Kill:
    """One SIGKILL: what was killed, when (wall clock), and which job it was running."""

    kind: str  # "job" (the work horse) or "worker" (its parent)
    worker: str
    pid: int
    at: float
    job_id: str | None = None
    back_after: float | None = None  # worker kills: seconds until the replacement registered


@dataclass
class Workers:
    """``n`` agent-worker processes named ``{prefix}1..n``; a killed one is restarted under its name."""

    env: Mapping[str, str]
    logdir: Path
    n: int
    prefix: str = "w"
    worker_env: Mapping[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    retired: list[subprocess.Popen[bytes]] = field(default_factory=list)
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    same_name: bool = True
    _generation: int = 0

    def __post_init__(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Workers:
        for i in range(1, self.n + 1):
            self._spawn(f"{self.prefix}{i}")
        return self

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        proc = procs.agent_worker(self.env, self.logdir / f"{name}.log", name=name, **self.worker_env)
        self.procs[name] = proc
        return proc

    def wait_registered(self, redis: Redis, *, timeout: float = 30) -> None:
        """Until every worker process has registered itself in RQ under its name with its pid."""
        from tests.support.wait import until

        until(lambda: all(self._registered(redis, name) for name in self.procs), timeout=timeout,
              interval=0.05, what="the workers to register")

    def _registered(self, redis: Redis, name: str) -> bool:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"worker {name} exited with {proc.returncode}: see {self.logdir / f'{name}.log'}")
        pid = redis.hget(f"rq:worker:{name}", "pid")
        return pid is not None and int(pid) == proc.pid and not redis.hexists(f"rq:worker:{name}", "death")

    def log_counts(self, *needles: str) -> dict[str, int]:
        """How many log lines of all the workers (restarted ones too) contain each needle."""
        counts = dict.fromkeys(needles, 0)
        for log in self.logdir.glob("*.log"):
            for line in log.read_text(errors="replace").splitlines():
                for needle in needles:
                    if needle in line:
                        counts[needle] += 1
        return counts

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    # ---- finding job processes -------------------------------------------------------
    def _children(self, name: str) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.procs[name].pid).children()
        except psutil.NoSuchProcess:
            return []
        for child in children:
            self.seen.setdefault(child.pid, child)
        return children

    def job_processes(self, database_url: str) -> dict[str, psutil.Process]:
        """Worker name -> its job process, for workers running a job that holds a database session."""
        with psycopg.connect(database_url, autocommit=True) as conn:
            apps = {r[0] for r in conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name LIKE 'agentsys-%%'")}
        found = {}
        for name in self.procs:
            for child in self._children(name):
                if f"agentsys-{child.pid}" in apps:
                    found[name] = child
        return found

    # ---- killing ---------------------------------------------------------------------
    def kill_job(self, rng: random.Random, redis: Redis, database_url: str, *, timeout: float = 5) -> Kill | None:
        """SIGKILL the job process of a random busy worker (waiting up to ``timeout`` for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self.job_processes(database_url)
            if busy:
                name = rng.choice(sorted(busy))
                job_id = _current_job(redis, name)
                horse = busy[name]
                try:
                    horse.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    continue
                return Kill("job", name, horse.pid, time.time(), job_id)
            time.sleep(0.02)
        return None

    def kill_worker(self, rng: random.Random, redis: Redis, database_url: str, *, timeout: float = 30) -> Kill:
        """SIGKILL a random worker (a busy one when there is one), then start a new one in its place.

        The new process takes the dead one's name (supervisord's ``worker-1``) when
        ``same_name``, else a new name.
        """
        busy = self.job_processes(database_url)
        name = rng.choice(sorted(busy) if busy else sorted(self.procs))
        proc = self.procs[name]
        for child in self._children(name):  # its job process lives on, orphaned: remember it for clean-up
            self.seen.setdefault(child.pid, child)
        job_id = _current_job(redis, name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout)
        kill = Kill("worker", name, proc.pid, time.time(), job_id)
        self.retired.append(proc)
        began = time.monotonic()
        if not self.same_name:
            del self.procs[name]
            self._generation += 1
            name = f"{name.split('-')[0]}-{self._generation}"
        self._spawn(name)
        from tests.support.wait import until

        until(lambda: self._registered(redis, name), timeout=timeout, interval=0.05,
              what=f"worker {name} to come back")
        kill.back_after = time.monotonic() - began
        return kill

    def close(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL), then any job process they left behind."""
        for proc in self.procs.values():
            procs.stop(proc, timeout=30)
        for proc in self.retired:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        leftovers = [p for p in self.seen.values() if _running(p)]
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=10)

    def __enter__(self) -> Workers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _current_job(redis: Redis, name: str) -> str | None:
    """The job a worker runs: RQ 3 keeps its executions as ``job_id:execution_id`` in a set."""
    members = redis.smembers(f"rq:worker:{name}:executions")
    return min(m.decode().split(":")[0] for m in members) if members else None


def kill_loop(workers: Workers, redis: Redis, database_url: str, *, rng: random.Random, interval: float,
              done: Callable[[], bool], timeout: float, log: Callable[[str], None] = print) -> list[Kill]:
    """SIGKILL a job process, then a worker, alternately, every ``interval`` (+-40%) until ``done()``.

    Pacing is deadline-driven (the next kill is due at a time, and the loop polls ``done``
    until then); the loop is bounded by ``timeout``.
    """
    kills: list[Kill] = []
    end = time.monotonic() + timeout
    due = time.monotonic() + interval
    while not done():
        now = time.monotonic()
        if now > end:
            raise AssertionError(f"the workload did not finish within {timeout:g}s under faults ({len(kills)} kills)")
        if now < due:
            time.sleep(min(0.1, due - now))
            continue
        if len(kills) % 2 == 0:
            kill = workers.kill_job(rng, redis, database_url, timeout=min(5.0, interval))
        else:
            kill = workers.kill_worker(rng, redis, database_url)
        if kill is None:
            due = time.monotonic() + 0.1  # nothing was running: try again soon
            continue
        kills.append(kill)
        log(f"kill {len(kills)}: {kill.kind} of {kill.worker} (pid {kill.pid}, job {kill.job_id})"
            + (f", back in {kill.back_after:.2f}s" if kill.back_after is not None else ""))
        due = time.monotonic() + interval * rng.uniform(0.6, 1.4)
    return kills
