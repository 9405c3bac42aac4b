from __future__ import annotations

import subprocess

import pytest

from agentsys.exitcodes import RET_CONFIG
from agentsys.settings import CommonSettings, load
from tests.support.procs import VENV_BIN
from worker.settings import WorkerSettings


def test_bad_value_stops_with_one_line_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", "not-a-url")
    with pytest.raises(SystemExit) as stopped:
        load(CommonSettings)
    assert stopped.value.code == RET_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "REDIS_URL" in err


def test_unknown_queue_is_named(monkeypatch, capsys):
    monkeypatch.setenv("WORKER_QUEUES", "price,bogus")
    with pytest.raises(SystemExit):
        load(WorkerSettings)
    err = capsys.readouterr().err
    assert "WORKER_QUEUES" in err and "bogus" in err


def test_placeholder_token_refused(monkeypatch, capsys):
    monkeypatch.setenv("API_TOKEN", "changeme")
    with pytest.raises(SystemExit):
        load(CommonSettings)
    assert "API_TOKEN" in capsys.readouterr().err


def test_low_queues_follow_the_configured_ones(monkeypatch):
    monkeypatch.setenv("WORKER_QUEUES", "price,control")
    assert load(WorkerSettings).queues == ["price", "control", "price.low", "control.low"]


def test_entry_point_reports_bad_setting_without_traceback(tmp_path):
    result = subprocess.run([str(VENV_BIN / "agent-worker")], env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://x"},
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == RET_CONFIG
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
