"""Operate a deployment: extra workers outside the process manager, and the state on one screen.

The logic behind ``agentctl worker start|stop`` and ``agentctl status`` (the seeds'
start/stop scripts and status page), as plain functions:

- :func:`start_worker` starts a detached ``agent-worker`` (its own session, so it outlives
  the command) with a pidfile and a log under ``<run dir>/workers/``;
- :func:`stop_worker` sends SIGTERM (RQ's warm shutdown: the job in flight finishes),
  waits up to a timeout, then SIGKILLs (the job is then redone: the recovery requeues it);
- :func:`status` gathers queues (depth and RQ registries), workers (RQ's registry with the
  stats each worker keeps beside its heartbeat), schedules with the leader, flags and the
  last bangs; :func:`render_status` prints them for people.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis
from rq import Queue, Worker
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer

from agentsys import flags, keys, queries, schedules
from agentsys.errors import AgentSysError
from agentsys.keys import Keys

RUN_DIR = ".run"
"""Default run folder of process mode (``RUN_DIR`` overrides it)."""
STOP_TIMEOUT = 30.0
"""Seconds a stopping worker gets to finish its job before it is killed."""
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Worker names: letters, digits and ``_ . -``."""
ALL_QUEUES = keys.ALL_QUEUES
REGISTRIES = {
    "started": StartedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}
"""RQ's registries per queue, by the job state they hold."""


class OpsError(AgentSysError):
    """An operation on a worker process was refused (bad name, already running, not ours)."""


@dataclass(frozen=True, slots=True)
class WorkerProcess:
    """A worker started by :func:`start_worker`."""

    name: str
    pid: int
    queues: str | None
    pidfile: Path
    log: Path


@dataclass(frozen=True, slots=True)
class Stopped:
    """How :func:`stop_worker` ended a worker: ``terminated`` (it exited after SIGTERM),
    ``killed`` (SIGKILL after the timeout) or ``not running`` (stale or no pidfile)."""

    name: str
    pid: int | None
    how: str
    seconds: float


def run_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The run folder: ``path``, else ``RUN_DIR``, else ``.run``."""
    return Path(path or os.environ.get("RUN_DIR") or RUN_DIR).resolve()


def _files(folder: Path, name: str) -> tuple[Path, Path]:
    if not NAME_RE.match(name):
        raise OpsError(f"bad worker name {name!r}: use 1-64 letters, digits, '_', '.', '-'")
    workers = folder / "workers"
    return workers / f"{name}.pid", workers / f"{name}.log"


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_worker(pid: int, name: str) -> bool:
    """True when ``pid`` is the worker ``--name name`` we started (not a recycled pid)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _is_running(pid)  # no /proc: trust the pidfile
    return any(b"worker" in a for a in args) and name.encode() in args


def worker_command() -> str:
    """The ``agent-worker`` beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("agent-worker")
    return str(beside) if beside.exists() else "agent-worker"


def run_environment(folder: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Where the stack ``make run`` started in this run folder keeps its servers (empty otherwise)."""
    try:
        found = json.loads((run_dir(folder) / "run.json").read_text()).get("env", {})
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def start_worker(*, name: str, queues: str | None = None, folder: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None, command: str | None = None) -> WorkerProcess:
    """Start a detached ``agent-worker --name NAME [--queues Q]``; its pid goes to a pidfile.

    The worker runs in its own session (the calling command may exit, a Ctrl-C in its
    terminal does not reach it), logs JSON to ``workers/NAME.log`` and is adopted by init.
    Its environment: ``env``, else this process's, else what ``make run`` noted in the run
    folder (so it joins that stack's Redis and PostgreSQL).
    """
    where = run_dir(folder)
    pidfile, log = _files(where, name)
    old = _read_pid(pidfile)
    if old is not None and _is_running(old) and _is_our_worker(old, name):
        raise OpsError(f"worker {name} is already running (pid {old}); stop it first")
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    args = [command or worker_command(), "--name", name]
    if queues:
        args += ["--queues", queues]
    environ = {**run_environment(where), **os.environ, **(env or {}), "WORKER_NAME": name}
    environ.setdefault("LOG_FORMAT", "json")
    # sh starts the worker in the background and prints its pid: the worker is not our child,
    # so nothing has to reap it and it survives this process.
    shell = subprocess.run(
        ["/bin/sh", "-c", 'log="$1"; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!', "sh", str(log), *args],
        env=environ, capture_output=True, text=True, check=True, start_new_session=True, timeout=30,
    )
    pid = int(shell.stdout.strip())
    tmp = pidfile.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pidfile)
    return WorkerProcess(name, pid, queues, pidfile, log)


def stop_worker(*, name: str, folder: str | os.PathLike[str] | None = None,
                timeout: float = STOP_TIMEOUT) -> Stopped:
    """SIGTERM the worker (its job in flight finishes), SIGKILL it if it is still there after ``timeout``."""
    pidfile, _ = _files(run_dir(folder), name)
    begin = time.monotonic()
    pid = _read_pid(pidfile)
    if pid is None or not _is_running(pid) or not _is_our_worker(pid, name):
        pidfile.unlink(missing_ok=True)
        return Stopped(name, pid, "not running", 0.0)
    os.kill(pid, signal.SIGTERM)
    how = "terminated"
    if not _wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        how = "killed"
        _wait_gone(pid, 10.0)
    pidfile.unlink(missing_ok=True)
    return Stopped(name, pid, how, round(time.monotonic() - begin, 3))


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def started_workers(folder: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Workers with a pidfile in the run folder, and whether each still runs."""
    found = []
    for pidfile in sorted((run_dir(folder) / "workers").glob("*.pid")):
        pid = _read_pid(pidfile)
        name = pidfile.stem
        found.append({"name": name, "pid": pid, "running": bool(pid and _is_running(pid) and _is_our_worker(pid, name))})
    return found


# ---- status ------------------------------------------------------------------------------

def queue_stats(redis: Redis) -> list[dict[str, Any]]:
    """Depth and registry counts of every queue (raw counts: no clean-up on a read)."""
    with redis.pipeline(transaction=False) as pipe:
        for name in ALL_QUEUES:
            pipe.llen(Queue.redis_queue_namespace_prefix + name)
            for registry in REGISTRIES.values():
                pipe.zcard(registry(name, connection=redis).key)
        counts = iter(pipe.execute())
    return [{"name": name, "depth": int(next(counts)), **{kind: int(next(counts)) for kind in REGISTRIES}}
            for name in ALL_QUEUES]


def _number(value: bytes | None) -> float | None:
    try:
        return float(value) if value not in (None, b"") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def worker_stats(redis: Redis, k: Keys) -> list[dict[str, Any]]:
    """Every registered worker: RQ's record and the stats it writes beside its heartbeat."""
    found = sorted(Worker.all(connection=redis, serializer=JSONSerializer), key=lambda w: w.name)
    with redis.pipeline(transaction=False) as pipe:
        for worker in found:
            pipe.hgetall(k.worker_stats(worker.name))
        stats = pipe.execute()
    now = datetime.now(UTC)
    out = []
    for worker, raw in zip(found, stats, strict=True):
        beat = worker.last_heartbeat
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        data = {f.decode(): v for f, v in raw.items()}
        rss = _number(data.get("rss_bytes"))
        out.append({
            "name": worker.name, "pid": worker.pid, "hostname": worker.hostname, "queues": worker.queue_names(),
            "state": str(worker.get_state()), "current_job": worker.get_current_job_id(),
            "heartbeat_age_s": round((now - beat).total_seconds(), 1) if beat else None,
            "jobs_done": worker.successful_job_count, "failures": worker.failed_job_count,
            "rss_bytes": int(rss) if rss is not None else None, "cpu_seconds": _number(data.get("cpu_seconds")),
            "last_job_ms": _number(data.get("last_job_ms")),
        })
    return out


def schedule_stats(redis: Redis, k: Keys) -> dict[str, Any]:
    """The named schedules with their last fired tick, and the leading scheduler."""
    found = schedules.list_schedules(redis, k)
    lasts = redis.mget([k.schedule_last(s.name) for s in found]) if found else []
    leader = redis.get(k.scheduler_lock())
    items = []
    for schedule, last in zip(found, lasts, strict=True):
        items.append({
            "name": schedule.name, "type": schedule.type, "params": schedule.params, "enabled": schedule.enabled,
            "every": f"{schedule.interval_s}s" if schedule.interval_s else f"{schedule.cron} ({schedule.timezone})",
            "market_hours": schedule.calendar is not None, "priority": schedule.priority.value,
            "last_tick": datetime.fromtimestamp(int(last), UTC).isoformat() if last is not None else None,
        })
    return {"leader": leader.decode() if isinstance(leader, bytes) else leader, "items": items}


def status(redis: Redis, conn: psycopg.Connection | None, k: Keys, *, bangs: int = 10) -> dict[str, Any]:
    """Queues, workers, schedules, flags and the last bangs, as JSON-able values.

    ``conn`` may be None (PostgreSQL unreachable): the bangs are then left out.
    """
    out: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "queues": queue_stats(redis),
        "workers": worker_stats(redis, k),
        "schedules": schedule_stats(redis, k),
        "flags": {"agents": flags.agent_flags(redis, k), "disabled_symbols": sorted(flags.disabled_symbols(redis, k))},
        "bangs": None,
    }
    if conn is not None:
        out["bangs"] = queries.events(conn, limit=bangs)
        conn.rollback()
    return out


def _size(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}M"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [header, *rows]]


def render_status(data: dict[str, Any]) -> str:
    """The status for a terminal: one block per subject."""
    lines = [f"status at {data['at']}", "", "QUEUES"]
    kinds = list(REGISTRIES)
    queues = [q for q in data["queues"] if q["depth"] or any(q[kd] for kd in kinds) or "." not in q["name"]]
    lines += _table([[q["name"], q["depth"], *(q[kd] for kd in kinds)] for q in queues], ["queue", "depth", *kinds])
    lines += ["", "WORKERS"]
    lines += _table([[w["name"], w["pid"], ",".join(q for q in w["queues"] if "." not in q), w["state"],
                      "-" if w["heartbeat_age_s"] is None else f"{w['heartbeat_age_s']:.0f}s", w["jobs_done"],
                      w["failures"], _size(w["rss_bytes"]), w["current_job"] or ""] for w in data["workers"]],
                    ["worker", "pid", "queues", "state", "beat", "done", "failed", "rss", "job"])
    sched = data["schedules"]
    lines += ["", f"SCHEDULES (leader: {sched['leader'] or 'none'})"]
    lines += _table([[s["name"], s["type"], s["every"], "yes" if s["enabled"] else "no", s["last_tick"] or "-"]
                     for s in sched["items"]], ["schedule", "type", "every", "enabled", "last tick"])
    agents = data["flags"]["agents"]
    disabled = data["flags"]["disabled_symbols"]
    lines += ["", "FLAGS", "  " + "  ".join(f"{a}: {'on' if on else 'OFF'}" for a, on in agents.items())
              + (f"  disabled symbols: {', '.join(disabled[:20])}{' ...' if len(disabled) > 20 else ''}" if disabled else "")]
    lines += ["", "LAST BANGS"]
    if data["bangs"] is None:
        lines.append("  (PostgreSQL unreachable)")
    else:
        lines += _table([[b["ts"], b["symbol"], f"{b['from_state']} -> {b['to_state']}", f"{b['price']:.4f}"]
                         for b in data["bangs"]], ["ts", "symbol", "change", "price"])
    return "\n".join(lines)
