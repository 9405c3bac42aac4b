from __future__ import annotations

import io
import json
import logging

import structlog

from agentsys.logging import configure_logging, get_logger


def test_structlog_and_stdlib_records_share_one_json_shape():
    out = io.StringIO()
    configure_logging("unit", fmt="json", stream=out)
    with structlog.contextvars.bound_contextvars(task_id="t1"):
        get_logger("agentsys.test").info("hello", duration_ms=1.5, api_token="s3cr3t-should-not-appear")
    logging.getLogger("rq.worker").warning("from rq %s", "here")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    ours, theirs = lines
    assert ours["event"] == "hello" and ours["task_id"] == "t1" and ours["duration_ms"] == 1.5
    assert ours["service"] == "unit" and ours["level"] == "info" and ours["timestamp"].endswith("Z")
    assert isinstance(ours["pid"], int)
    assert "s3cr3t" not in out.getvalue()
    assert theirs["event"] == "from rq here" and theirs["logger"] == "rq.worker" and theirs["level"] == "warning"


def test_exceptions_are_structured():
    out = io.StringIO()
    configure_logging("unit", fmt="json", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("x").exception("failed")
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["exception"][0]["exc_type"] == "ValueError"
