"""``agentctl worker start|stop`` and ``agentctl status`` from the command line (the library
functions behind them are tested in tests/operate/test_ops.py)."""

from __future__ import annotations

import json
import os
import subprocess

from rq import Worker
from rq.serializers import JSONSerializer

from agentsys import tasks
from tests.support import wait
from tests.support.procs import VENV_BIN

WORKER_ENV = {"WORKER_TTL": "20", "MAINTENANCE_INTERVAL": "1", "WORKER_WITH_SCHEDULER": "false"}


def _agentctl(stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "agentctl"), *args], env={**os.environ, **stack.env, **(env or {})},
                          capture_output=True, text=True, timeout=90, cwd=stack.tmp)


def _registered(stack, name: str) -> bool:
    return any(w.name == name for w in Worker.all(connection=stack.redis, serializer=JSONSerializer))


def test_worker_start_status_stop(stack):
    run_dir = str(stack.tmp / "run")
    started = _agentctl(stack, "worker", "start", "--name", "cli-1", "--queues", "control", "--run-dir", run_dir,
                        "--json", env=WORKER_ENV)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        assert info["name"] == "cli-1" and info["queues"] == "control" and info["pid"] > 0
        wait.until(lambda: _registered(stack, "cli-1"), what="the worker to register")
        again = _agentctl(stack, "worker", "start", "--name", "cli-1", "--run-dir", run_dir)
        assert again.returncode == 2 and "already running" in again.stderr and len(again.stderr.splitlines()) == 1
        with stack.db() as conn:
            run = tasks.submit(stack.redis, conn, stack.keys, type="note", params={"description": "via the cli"})
            assert tasks.wait(conn, run.id, timeout=30).worker == "cli-1"
        wait.until(lambda: stack.redis.exists(stack.keys.worker_stats("cli-1")), timeout=30,
                   what="the worker's stats")
        status = _agentctl(stack, "status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert "cli-1" in [w["name"] for w in data["workers"]]
        assert {q["name"] for q in data["queues"]} >= {"price", "indicator", "bang", "control"}
        assert data["flags"]["agents"] == {"price": True, "indicator": True, "bang": True}
        human = _agentctl(stack, "status")
        assert human.returncode == 0 and "QUEUES" in human.stdout and "cli-1" in human.stdout
    finally:
        stopped = _agentctl(stack, "worker", "stop", "--name", "cli-1", "--run-dir", run_dir, "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) | {"seconds": 0} == {"name": "cli-1", "pid": info["pid"], "how": "terminated",
                                                            "seconds": 0}
    assert not _registered(stack, "cli-1")
    gone = _agentctl(stack, "worker", "stop", "--name", "cli-1", "--run-dir", run_dir)
    assert gone.returncode == 0 and gone.stdout.strip() == "worker cli-1: not running"


def test_bad_worker_name_and_unreachable_redis_are_one_line_errors(stack):
    bad = _agentctl(stack, "worker", "start", "--name", "../evil", "--run-dir", str(stack.tmp))
    assert bad.returncode == 2 and bad.stderr.startswith("agentctl: bad worker name") and len(bad.stderr.splitlines()) == 1
    down = _agentctl(stack, "status", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 4 and "Traceback" not in down.stderr and len(down.stderr.splitlines()) == 1
