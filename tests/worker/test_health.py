from __future__ import annotations

import os
import signal
import subprocess

from rq import Worker

from tests.support import procs, wait
from tests.support.procs import VENV_BIN


def _health(stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "agent-worker-health"), *args], env={**os.environ, **stack.env},
                          capture_output=True, text=True, timeout=30)


def test_health_check_passes_while_the_worker_beats_and_fails_once_it_stops(stack):
    worker = procs.start([str(VENV_BIN / "agent-worker"), "--name", "hc-1", "--queues", "control"], stack.env,
                         stack.tmp / "w.log")
    try:
        wait.until(lambda: any(w.name == "hc-1" for w in Worker.all(connection=stack.redis)), what="worker registered")
        ok = _health(stack, "--name", "hc-1")
        assert ok.returncode == 0, ok.stderr
        assert _health(stack).returncode == 0  # by host name, as a container probe runs it
    finally:
        assert procs.stop(worker) == 0
    gone = _health(stack, "--name", "hc-1")
    assert gone.returncode == 1
    assert "no worker named hc-1" in gone.stderr


def test_health_check_fails_on_a_stale_heartbeat(stack):
    worker = procs.start([str(VENV_BIN / "agent-worker"), "--name", "hc-2", "--queues", "control"], stack.env,
                         stack.tmp / "w.log")
    try:
        wait.until(lambda: any(w.name == "hc-2" for w in Worker.all(connection=stack.redis)), what="worker registered")
        # a hung worker: still registered, no longer beating
        os.kill(worker.pid, signal.SIGSTOP)
        stale = wait.until(lambda: (r := _health(stack, "--name", "hc-2", "--max-age", "2")).returncode == 1 and r,
                           timeout=20, interval=0.5, what="stale heartbeat detected")
        assert "stale heartbeat" in stale.stderr
        os.kill(worker.pid, signal.SIGCONT)
    finally:
        procs.stop(worker)
