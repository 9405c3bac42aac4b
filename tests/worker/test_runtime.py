"""The job runtime's steps: one line per job, early outcomes, transient errors as retries."""

from __future__ import annotations

import psycopg
import pytest
from rq import Retry
from structlog.testing import CapturingLogger

from worker import runtime


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What the runtime logs, as (level, event, fields) dicts (the logging set-up of other tests aside)."""
    capture = CapturingLogger()
    monkeypatch.setattr(runtime, "log", capture)
    return capture.calls  # type: ignore[return-value]


def _lines(calls) -> list[dict[str, object]]:
    return [{"log_level": c.method_name, "event": c.args[0], **c.kwargs} for c in calls]


def _job() -> runtime.JobRun:
    return runtime.JobRun(ctx=None, fields={"agent": "price", "shard": 3, "job_id": "j1"})  # type: ignore[arg-type]


def _chain(*steps: runtime.Step, body=lambda job: {"ticks": 7}) -> object:
    return runtime.chain(_job(), steps, body)()


def test_a_job_writes_one_line_with_its_duration_and_summary(logs):
    assert _chain(runtime.logged(dict)) == {"ticks": 7}
    lines = _lines(logs)
    assert [(e["event"], e["ticks"]) for e in lines] == [("job finished", 7)]
    assert isinstance(lines[0]["duration_ms"], float)


def test_a_transient_error_is_a_retry_and_its_own_line(logs):
    def broken(job):
        raise psycopg.OperationalError("server closed the connection\nmore detail")

    got = _chain(runtime.logged(dict), runtime.retried, body=broken)
    assert isinstance(got, Retry)
    assert [(e["event"], e["log_level"], e["error"]) for e in _lines(logs)] == [
        ("transient error; will retry", "warning", "server closed the connection")]


def test_an_outcome_without_event_is_silent(logs):
    assert _chain(runtime.logged(), body=lambda job: runtime.Outcome({"n": 1}, event=None)) == {"n": 1}
    assert logs == []


def test_a_failure_is_logged_once_and_raised(logs):
    def failing(job):
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        _chain(runtime.logged(dict), runtime.retried, body=failing)
    assert [(e["log_level"], e["event"]) for e in _lines(logs)] == [("exception", "job failed")]


def test_a_step_that_needs_the_connection_says_which_step_is_missing():
    with pytest.raises(RuntimeError, match="runtime.connected"):
        _ = _job().conn
