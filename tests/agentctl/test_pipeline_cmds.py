"""agentctl replay / indicators / events, end to end, with and without running workers."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from rq import Worker

from tests.support import procs, wait
from tests.support.procs import VENV_BIN


def _agentctl(stack, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "agentctl"), *args], env={**os.environ, **stack.env}, capture_output=True,
                          text=True, timeout=timeout, cwd=stack.tmp)


def _csv(path, symbols=("AAA", "BBB"), n=150, seed=1, bump=None) -> str:
    rng = np.random.default_rng(seed)
    lines = ["symbol,date,close,volume"]
    for s in symbols:
        p = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        if bump is not None:
            p[bump] *= 1.5
        lines += [f"{s},{1_700_000_000 + 3600 * i},{v:.6f},7" for i, v in enumerate(p)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def agentctl_ready():
    if not (VENV_BIN / "agentctl").exists():
        pytest.skip("agentctl is not installed (make setup)")


def test_replay_without_workers_runs_its_own_and_twice_changes_nothing(stack, agentctl_ready):
    path = _csv(stack.tmp / "a.csv")
    first = _agentctl(stack, "replay", path, "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["symbols"] == 2 and summary["ticks"] == 300 and summary["bangs"] > 0
    assert summary["workers"] == "own"
    again = _agentctl(stack, "replay", path, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["bangs"] == summary["bangs"]
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM prices").fetchone()[0] == 300
        bangs = conn.execute("SELECT count(*) FROM bang_events").fetchone()[0]
    assert bangs == summary["bangs"]

    ind = json.loads(_agentctl(stack, "indicators", "--symbol", "AAA", "--json").stdout)
    assert len(ind) == 150 and set(ind[0]) == {"symbol", "ts", "price", "ema_fast", "ema_mid", "ema_slow", "state"}
    assert ind[0]["ts"].endswith("Z") and ind[0]["ema_fast"] is None and ind[54]["state"] is not None
    assert ind[7]["ema_fast"] is None and ind[8]["ema_fast"] is not None
    assert len(json.loads(_agentctl(stack, "indicators", "--symbol", "AAA", "--limit", "5", "--json").stdout)) == 5
    events = json.loads(_agentctl(stack, "events", "--json").stdout)
    assert len(events) == bangs and events[0]["ts"] >= events[-1]["ts"]
    assert set(events[0]) == {"symbol", "ts", "from_state", "to_state", "price", "ema_fast", "ema_mid", "ema_slow"}
    human = _agentctl(stack, "events", "--symbol", "BBB", "--limit", "3")
    assert human.returncode == 0 and human.stdout.splitlines()[0].split()[0] == "symbol"
    for command in ("indicators", "events"):
        unknown = _agentctl(stack, command, "--symbol", "ZZZ", "--json")
        assert unknown.returncode == 7 and unknown.stderr.strip() == "agentctl: unknown symbol 'ZZZ': not in the universe"
        bad = _agentctl(stack, command, "--symbol", "no good")
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "bad symbol" in bad.stderr


def test_replay_uses_running_workers(stack, agentctl_ready):
    worker = procs.agent_worker(stack.env, stack.tmp / "w.log", name="running-1")
    try:
        wait.until(lambda: any(w.name == "running-1" for w in Worker.all(connection=stack.redis)), timeout=30,
                   what="the running worker to register")  # else agentctl rightly starts its own
        out = _agentctl(stack, "replay", _csv(stack.tmp / "b.csv"), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["workers"] == "running"
        assert "running-1" in (stack.tmp / "w.log").read_text()
    finally:
        procs.stop(worker)


def test_errors_are_one_line_and_nonzero(stack, agentctl_ready):
    bad = stack.tmp / "bad.csv"
    bad.write_text("symbol,ts,price\nAAA,2024-01-01,1\nAAA,soon,2\n")
    out = _agentctl(stack, "replay", str(bad))
    assert out.returncode == 3 and "line 3" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert _agentctl(stack, "replay", str(stack.tmp / "missing.csv")).returncode == 3
    path = _csv(stack.tmp / "c.csv")
    assert _agentctl(stack, "replay", path).returncode == 0
    differ = _agentctl(stack, "replay", _csv(stack.tmp / "d.csv", bump=10))
    assert differ.returncode == 1 and "append-only" in differ.stderr and len(differ.stderr.strip().splitlines()) == 1
    periods = _agentctl(stack, "replay", path, "--fast", "5", "--mid", "10", "--slow", "20")
    assert periods.returncode == 1 and "other EMA periods" in periods.stderr
    assert _agentctl(stack, "replay", path, "--fast", "5", "--mid", "10", "--slow", "20", "--replace").returncode == 0
    env_bad = subprocess.run([str(VENV_BIN / "agentctl"), "events"], env={**os.environ, **stack.env,
                             "REDIS_URL": "redis://127.0.0.1:1/0"}, capture_output=True, text=True, timeout=60)
    assert env_bad.returncode == 4 and "Traceback" not in env_bad.stderr
