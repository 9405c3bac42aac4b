"""Extra workers outside the process manager: ``agentctl worker start|stop`` (the seeds' start/stop scripts).

- :func:`start_worker` starts a detached ``agent-worker`` (its own session, so it outlives
  the command) with a pidfile and a log under ``<run dir>/workers/``;
- :func:`stop_worker` sends SIGTERM (RQ's warm shutdown: the job in flight finishes),
  waits up to a timeout, then SIGKILLs (the job is then redone: the recovery requeues it).

Process control lives with the CLI, not in the shared library: no service starts workers.
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
from pathlib import Path
from typing import Any

from agentsys import defaults
from agentsys.errors import AgentSysError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Worker names: letters, digits and ``_ . -``."""


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
    return Path(path or os.environ.get("RUN_DIR") or defaults.RUN_DIR).resolve()


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
                timeout: float = defaults.STOP_TIMEOUT) -> Stopped:
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
