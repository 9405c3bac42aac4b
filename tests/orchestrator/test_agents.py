"""GET/PUT /agents and POST /agents/{name}/run: flags take effect on the next job, no restart."""

from __future__ import annotations

import uuid

from agentsys import flags, tasks
from tests.orchestrator.conftest import needs_pipeline, zigzag_csv
from tests.support import procs
from tests.support.wait import until


def _agents(client):
    r = client.get("/agents")
    assert r.status_code == 200
    return {a["name"]: a for a in r.json()}


def test_agents_show_flag_depth_workers_and_breakers(client, stack, tmp_path):
    agents = _agents(client)
    assert list(agents) == ["price", "indicator", "bang"]
    assert all(a["enabled"] and a["queue_depth"] == 0 and a["workers"] == [] for a in agents.values())
    assert [b["source"] for b in agents["price"]["breakers"]] == ["synthetic", "http"]
    assert all(b["state"] == "closed" for b in agents["price"]["breakers"])
    assert agents["bang"]["breakers"] == []

    stack.redis.hset(stack.keys.breaker("http"), mapping={"state": "open", "failures": 5, "opened_at": 1.5e9})
    tasks.queue(stack.redis, "indicator").enqueue("worker.agents.indicator.run", args=(0,))
    tasks.queue(stack.redis, "bang.low").enqueue("worker.agents.bang.run", args=(0,))
    name = f"w-{uuid.uuid4().hex[:8]}"
    worker = procs.rq_worker(stack.env, tmp_path / "w.log", "control", "price", name=name)
    try:
        until(lambda: _agents(client)["price"]["workers"] == [name], timeout=30, what="worker registered")
        agents = _agents(client)
    finally:
        procs.stop(worker)
    http = next(b for b in agents["price"]["breakers"] if b["source"] == "http")
    assert http == {"source": "http", "state": "open", "failures": 5, "opened_at": 1.5e9}
    assert agents["indicator"]["queue_depth"] == 1 and agents["bang"]["queue_depth_low"] == 1
    assert agents["indicator"]["workers"] == []


def test_flag_flip_is_visible_and_validated(client, anon, stack):
    r = client.put("/agents/indicator", json={"enabled": False})
    assert r.status_code == 200 and r.json()["name"] == "indicator" and r.json()["enabled"] is False
    assert _agents(anon)["indicator"]["enabled"] is False
    assert flags.is_enabled(stack.redis, stack.keys, "indicator") is False
    assert client.put("/agents/indicator", json={"enabled": True}).json()["enabled"] is True
    assert _agents(anon)["indicator"]["enabled"] is True
    assert client.put("/agents/nobody", json={"enabled": True}).status_code == 422
    for body in ({}, {"enabled": "maybe"}, {"enabled": True, "extra": 1}):
        r = client.put("/agents/price", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"


def test_flag_takes_effect_on_the_next_job(client, stack):
    needs_pipeline()
    from tests.support.pipeline import drain

    assert client.put("/agents/indicator", json={"enabled": False}).status_code == 200
    task = client.post("/tasks", json={"type": "replay", "params": {"csv": zigzag_csv(), "fast": 2, "mid": 3,
                                                                    "slow": 5}}).json()
    drain(stack)
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM prices").fetchone()[0] == 40
        assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 0
    assert client.get(f"/tasks/{task['id']}").json()["state"] == "started"

    assert client.put("/agents/indicator", json={"enabled": True}).status_code == 200
    run = client.post("/agents/indicator/run", json={"priority": "high"})
    assert run.status_code == 202 and run.headers["location"] == f"/tasks/{run.json()['id']}"
    assert run.json()["type"] == "run_agent" and run.json()["params"] == {"agent": "indicator", "shards": None}
    drain(stack)
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM indicators").fetchone()[0] == 40
    assert client.get(f"/tasks/{run.json()['id']}").json()["state"] == "finished"
    assert client.get(f"/tasks/{task['id']}").json()["state"] == "finished"


def test_run_agent_validation(client):
    needs_pipeline()
    assert client.post("/agents/bang/run").status_code == 202
    assert client.post("/agents/bang/run", json={"shards": [0, 2]}).json()["params"]["shards"] == [0, 2]
    assert client.post("/agents/bang/run", json={"shards": [-1]}).status_code == 422
    assert client.post("/agents/bang/run", json={"shards": "all"}).status_code == 422
    assert client.post("/agents/other/run").status_code == 422
