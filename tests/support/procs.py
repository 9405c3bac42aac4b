"""Processes a test starts, and so may stop (by PID, never by name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def start(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    try:
        return subprocess.Popen(list(args), env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()


def rq_worker(env: Mapping[str, str], log: Path, *queues: str, name: str, burst: bool = False) -> subprocess.Popen[bytes]:
    """A real worker started with RQ's own CLI, our worker class and the JSON serializer."""
    args = [str(VENV_BIN / "rq"), "worker", "-w", "worker.app.AgentWorker", "-S", "json",
            "--url", env["REDIS_URL"], "--name", name, *queues]
    if burst:
        args.insert(2, "--burst")
    return start(args, env, log)


def stop(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def agent_worker(stack_env: Mapping[str, str], log: Path, *, name: str, queues: str | None = None,
                 **env: str) -> subprocess.Popen[bytes]:
    """A real ``agent-worker`` process (forking, JSON only) with fast maintenance for tests."""
    settings = {"WORKER_TTL": "20", "MAINTENANCE_INTERVAL": "1", "WORKER_WITH_SCHEDULER": "false", **env}
    args = [str(VENV_BIN / "agent-worker"), "--name", name]
    if queues:
        args += ["--queues", queues]
    return start(args, {**stack_env, **settings}, log)


def agent_scheduler(stack_env: Mapping[str, str], log: Path, *, name: str, defaults: bool = True,
                    **env: str) -> subprocess.Popen[bytes]:
    """A real ``agent-scheduler`` process; ``defaults=False`` leaves out its default schedules."""
    args = [str(VENV_BIN / "agent-scheduler"), "--name", name, *([] if defaults else ["--no-defaults"])]
    return start(args, {**stack_env, **env}, log)
