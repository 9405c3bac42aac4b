"""POST /tasks, GET /tasks/{id} (long poll, traceback), cancel and retry, with real workers."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from agentsys import symbols, tasks
from agentsys.symbols import SymbolSpec
from tests.orchestrator.conftest import needs_pipeline, zigzag_csv
from tests.support import procs
from tests.support.pipeline import drain
from tests.support.wait import until


def _queue_ids(stack, name):
    return tasks.queue(stack.redis, name).job_ids


def _worker(stack, tmp_path, *queues, burst=False):
    name = f"w-{uuid.uuid4().hex[:8]}"
    return procs.rq_worker(stack.env, tmp_path / f"{name}.log", *queues, name=name, burst=burst), name


def test_original_body_is_a_note_with_202_and_location(client, stack):
    r = client.post("/tasks", json={"description": "check the watch list", "priority": 1})
    assert r.status_code == 202
    task = r.json()
    assert r.headers["location"] == f"/tasks/{task['id']}"
    assert task["type"] == "note" and task["state"] == "queued" and task["priority"] == "normal"
    assert task["params"] == {"description": "check the watch list"}
    assert _queue_ids(stack, "control") == [task["id"]]
    again = client.get(r.headers["location"])
    assert again.status_code == 200 and again.json()["id"] == task["id"]


@pytest.mark.parametrize(("given", "queue", "front"), [
    ("high", "price", True), ("normal", "price", False), ("low", "price.low", False),
])
def test_priority_maps_to_queue_and_position(client, stack, given, queue, front):
    needs_pipeline()
    first = client.post("/tasks", json={"type": "pipeline", "params": {"symbols": ["AAA"]}}).json()
    r = client.post("/tasks", json={"type": "pipeline", "params": {"symbols": ["AAA"]}, "priority": given})
    assert r.status_code == 202, r.text
    task = r.json()
    assert task["queue"] == queue and task["priority"] == given
    ids = _queue_ids(stack, queue)
    if queue == "price":
        assert ids == ([task["id"], first["id"]] if front else [first["id"], task["id"]])
    else:
        assert ids == [task["id"]]


@pytest.mark.parametrize(("number", "queue", "priority"), [(0, "control.low", "low"), (1, "control", "normal"),
                                                           (5, "control", "high")])
def test_integer_priority_of_the_original_design(client, stack, number, queue, priority):
    task = client.post("/tasks", json={"description": "x", "priority": number}).json()
    assert (task["queue"], task["priority"]) == (queue, priority)


@pytest.mark.parametrize(("body", "loc"), [
    ({"description": "x", "priority": "urgent"}, ["body", "priority"]),
    ({"description": "x", "priority": 11}, ["body", "priority"]),
    ({"type": "nope"}, ["body", "type"]),
    ({"type": "Bad Type"}, ["body", "type"]),
    ({"type": "note", "params": {}}, ["body", "params", "description"]),
    ({"type": "pipeline", "params": {"symbols": ["not a symbol"]}}, ["body", "params", "symbols"]),
    ({"type": "pipeline", "params": {"bogus": 1}}, ["body", "params", "bogus"]),
    ({"type": "backfill", "params": {"symbols": ["AAA"], "start": "2026-01-02T00:00:00Z",
                                     "end": "2026-01-01T00:00:00Z"}}, ["body", "params"]),
    ({"type": "run_agent", "params": {"agent": "nobody"}}, ["body", "params", "agent"]),
    ({"type": "reshard", "params": {}}, ["body", "params", "shard_size"]),
    ({"type": "reshard", "params": {"shard_size": 0}}, ["body", "params", "shard_size"]),
    ({"type": "reshard", "params": {"shard_size": 100_001}}, ["body", "params", "shard_size"]),
    ({"type": "replay", "params": {"fast": 3}}, ["body", "params", "csv"]),
    ({"description": "nul \x00 byte"}, ["body", "params"]),
    ({"type": "pipeline", "description": "x"}, ["body"]),
    ({}, ["body"]),
    ({"description": "x", "extra": 1}, ["body", "extra"]),
])
def test_invalid_bodies_are_422_naming_the_field(client, stack, body, loc):
    if body.get("type") in ("pipeline", "backfill", "run_agent", "replay"):
        needs_pipeline()
    r = client.post("/tasks", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and any(d["loc"][: len(loc)] == loc for d in detail), detail
    assert _queue_ids(stack, "control") == [] and _queue_ids(stack, "price") == []


def test_a_reshard_task_renumbers_the_universe_and_runs_every_agent_on_its_shards(client, stack):
    names = [f"RS{i}" for i in range(5)]
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=n, source="csv") for n in names], shard_size=1)
        conn.commit()
    r = client.post("/tasks", json={"type": "reshard", "params": {"shard_size": 2}})
    assert r.status_code == 202, r.text
    assert r.json()["queue"] == "control" and r.json()["params"] == {"shard_size": 2}
    drain(stack)
    task = client.get(f"/tasks/{r.json()['id']}").json()
    assert task["state"] == "finished", task
    assert task["result"] == {"shard_size": 2, "symbols": 5, "shards_before": 5, "shards_after": 3, "moved": 4,
                              "enqueued": 3 * 3}
    shards = {s["symbol"]: s["shard"] for s in client.get("/symbols").json()["items"]}
    assert shards == {n: i // 2 for i, n in enumerate(names)}
    finished = {a: tasks.queue(stack.redis, a).finished_job_registry.count for a in ("price", "indicator", "bang")}
    assert finished == {"price": 3, "indicator": 3, "bang": 3}


def test_malformed_json_and_wrong_content_type_are_422(client):
    r = client.post("/tasks", content=b'{"description": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/tasks", content=b"description=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422


def test_replay_inline_and_as_text_csv(client, stack):
    needs_pipeline()
    inline = client.post("/tasks", json={"type": "replay", "params": {"csv": zigzag_csv(), "fast": 2, "mid": 3,
                                                                      "slow": 5}, "priority": "low"})
    assert inline.status_code == 202, inline.text
    assert inline.json()["type"] == "replay" and inline.json()["queue"] == "price.low"
    raw = client.post("/tasks/replay", params={"fast": 2, "mid": 3, "slow": 5, "priority": "high"},
                      content=zigzag_csv(("BBB",)).encode(), headers={"Content-Type": "text/csv"})
    assert raw.status_code == 202, raw.text
    assert raw.headers["location"] == f"/tasks/{raw.json()['id']}"
    with stack.db() as conn:
        staged = conn.execute("SELECT task_id, count(*) FROM staged_prices GROUP BY task_id ORDER BY 2").fetchall()
    assert sorted(t for t, _ in staged) == sorted([inline.json()["id"], raw.json()["id"]])


def test_replay_with_a_bad_csv_is_422_with_line_numbers(client, stack):
    needs_pipeline()
    bad = "symbol,ts,price\nAAA,2026-01-05T09:00:00Z,1.0\nAAA,2026-01-05T09:01:00Z,-3\n"
    r = client.post("/tasks/replay", content=bad.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 422 and "line 3" in r.json()["detail"]
    r = client.post("/tasks", json={"type": "replay", "params": {"csv": bad}})
    assert r.status_code == 422 and "line 3" in r.json()["detail"]
    r = client.post("/tasks/replay", params={"fast": 5, "mid": 3, "slow": 8}, content=zigzag_csv().encode(),
                    headers={"Content-Type": "text/csv"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "query"
    r = client.post("/tasks/replay", content=b"\xff\xfe\x00bad", headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM task_runs").fetchone()[0] == 0


def test_unknown_and_malformed_ids(client):
    r = client.get("/tasks/0123456789abcdef")
    assert r.status_code == 404 and "no task" in r.json()["detail"]
    assert client.get("/tasks/bad%20id").status_code == 422
    assert client.post("/tasks/0123456789abcdef/cancel").status_code == 404
    assert client.post("/tasks/0123456789abcdef/retry").status_code == 404
    assert client.get("/tasks/x", params={"wait": 61}).status_code == 422
    assert client.get("/tasks/x", params={"wait": -1}).status_code == 422


def test_long_poll_returns_when_the_task_ends(client, stack, tmp_path):
    worker, name = _worker(stack, tmp_path, "control")
    try:
        r = client.post("/tasks", json={"description": "hello", "priority": 1})
        begin = time.monotonic()
        task = client.get(r.headers["location"], params={"wait": 30}).json()
        assert time.monotonic() - begin < 30
    finally:
        procs.stop(worker)
    assert task["state"] == "finished", task
    assert task["result"]["description"] == "hello" and task["worker"] == name and task["attempts"] == 1
    assert task["progress"] == 1.0 and task["error"] is None
    stamps = [datetime.fromisoformat(task[k]) for k in ("enqueued_at", "started_at", "ended_at")]
    assert stamps == sorted(stamps)


def test_long_poll_gives_up_at_the_deadline(client):
    task = client.post("/tasks", json={"description": "nobody runs this"}).json()
    begin = time.monotonic()
    r = client.get(f"/tasks/{task['id']}", params={"wait": 0.4})
    waited = time.monotonic() - begin
    assert r.status_code == 200 and r.json()["state"] == "queued"
    assert 0.4 <= waited < 5


def test_cancel_a_queued_task_then_retry_it(client, stack, tmp_path):
    task = client.post("/tasks", json={"description": "later"}).json()
    r = client.post(f"/tasks/{task['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "canceled" and r.json()["ended_at"]
    assert _queue_ids(stack, "control") == []
    job = Job.fetch(task["id"], connection=stack.redis, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.CANCELED
    again = client.post(f"/tasks/{task['id']}/cancel")
    assert again.status_code == 409 and "canceled" in again.json()["detail"]

    r = client.post(f"/tasks/{task['id']}/retry")
    assert r.status_code == 202 and r.headers["location"] == f"/tasks/{task['id']}"
    assert r.json()["state"] == "queued" and r.json()["ended_at"] is None
    assert _queue_ids(stack, "control") == [task["id"]]
    assert client.post(f"/tasks/{task['id']}/retry").status_code == 409  # its job is live again

    worker, _ = _worker(stack, tmp_path, "control", burst=True)
    until(lambda: worker.poll() is not None, timeout=60, what="burst worker to finish")
    done = client.get(f"/tasks/{task['id']}").json()
    assert done["state"] == "finished" and done["attempts"] == 1
    assert client.post(f"/tasks/{task['id']}/retry").status_code == 409
    assert client.post(f"/tasks/{task['id']}/cancel").status_code == 409


def test_failed_task_has_a_structured_traceback_and_can_be_retried(client, stack, tmp_path):
    needs_pipeline()
    task = client.post("/tasks", json={"type": "pipeline", "params": {"symbols": ["ZZZ"]}}).json()
    worker, _ = _worker(stack, tmp_path, "price", burst=True)
    until(lambda: worker.poll() is not None, timeout=60, what="burst worker to finish")
    failed = client.get(f"/tasks/{task['id']}").json()
    assert failed["state"] == "failed" and "unknown symbols" in failed["error"], failed
    assert failed["traceback"] is None
    detailed = client.get(f"/tasks/{task['id']}", params={"traceback": "true"}).json()["traceback"]
    assert "InputError" in detailed["exception"]
    assert detailed["frames"] and all({"file", "line", "function", "code"} <= set(f) for f in detailed["frames"])

    assert client.post("/symbols", json={"symbols": [{"symbol": "ZZZ"}]}).status_code == 201
    r = client.post(f"/tasks/{task['id']}/retry")
    assert r.status_code == 202 and r.json()["state"] == "queued" and r.json()["error"] is None
    worker, _ = _worker(stack, tmp_path, "price", "indicator", "bang", burst=True)
    until(lambda: worker.poll() is not None, timeout=60, what="burst worker to finish")
    done = client.get(f"/tasks/{task['id']}", params={"wait": 10}).json()
    assert done["state"] == "finished" and done["attempts"] == 2, done


def test_cancel_a_started_composite_task_keeps_it_canceled(client, stack):
    needs_pipeline()
    from tests.support.pipeline import drain

    assert client.put("/agents/bang", json={"enabled": False}).status_code == 200
    task = client.post("/tasks", json={"type": "replay", "params": {"csv": zigzag_csv(), "fast": 2, "mid": 3,
                                                                    "slow": 5}}).json()
    drain(stack)
    assert client.get(f"/tasks/{task['id']}").json()["state"] == "started"  # waits for the bang agent
    assert client.post(f"/tasks/{task['id']}/cancel").json()["state"] == "canceled"
    assert client.put("/agents/bang", json={"enabled": True}).status_code == 200
    assert client.post("/agents/bang/run").status_code == 202
    drain(stack)
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM progress WHERE agent = 'bang'").fetchone()[0] == 1
    assert client.get(f"/tasks/{task['id']}").json()["state"] == "canceled"
