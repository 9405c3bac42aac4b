"""GET /queues, GET /workers and GET /metrics against a real worker."""

from __future__ import annotations

import time
import uuid

from prometheus_client.parser import text_string_to_metric_families
from rq.registry import FinishedJobRegistry

from agentsys import tasks
from tests.orchestrator.conftest import needs_pipeline
from tests.support import procs
from tests.support.wait import until


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_queues_show_depth_and_registries(client, stack):
    client.post("/tasks", json={"description": "one"})
    client.post("/tasks", json={"description": "two", "priority": 0})
    queues = {q["name"]: q for q in client.get("/queues").json()}
    assert list(queues) == ["price", "indicator", "bang", "control", "price.low", "indicator.low", "bang.low",
                            "control.low"]
    assert queues["control"]["depth"] == 1 and queues["control.low"]["depth"] == 1
    task = client.get("/tasks").json()["items"][0]
    client.post(f"/tasks/{task['id']}/cancel")
    queues = {q["name"]: q for q in client.get("/queues").json()}
    assert queues["control.low"]["depth"] + queues["control"]["depth"] == 1
    assert queues["control.low"]["canceled"] + queues["control"]["canceled"] == 1


def test_workers_and_metrics_from_a_real_worker(client, stack, tmp_path):
    name = f"w-{uuid.uuid4().hex[:8]}"
    worker = procs.rq_worker(stack.env, tmp_path / "w.log", "control", name=name)
    try:
        task = client.post("/tasks", json={"description": "measure me"}).json()
        assert client.get(f"/tasks/{task['id']}", params={"wait": 30}).json()["state"] == "finished"
        found = until(lambda: [w for w in client.get("/workers").json()
                               if w["name"] == name and w["successful_jobs"] >= 1], timeout=30, what="worker count")
        info = found[0]
        assert info["queues"] == ["control"] and info["pid"] == worker.pid and info["state"] in ("idle", "busy")
        assert info["last_heartbeat"] and info["birth"] and info["failed_jobs"] == 0
        # the stats a worker writes with its heartbeat (Keys.worker_stats, docs/interfaces.md)
        stack.redis.hset(stack.keys.worker_stats(name), mapping={
            "rss_bytes": 123456789, "cpu_seconds": 4.5, "jobs_done": 1, "failures": 0, "last_job_ms": 12.5,
            "at": time.time()})
        info = next(w for w in client.get("/workers").json() if w["name"] == name)
        assert info["rss_bytes"] == 123456789 and info["cpu_seconds"] == 4.5 and info["last_job_ms"] == 12.5
        assert info["stats_at"]
        # the recovery sweep the worker triggers at start runs on the control queue too: under load it
        # can end after the first scrape below, and the second would then count one more job
        until(lambda: len(FinishedJobRegistry("control", connection=stack.redis).get_job_ids(cleanup=False)) >= 2, timeout=30,
              what="the note and the start-up sweep to finish")

        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        samples = _samples(metrics.text)
    finally:
        procs.stop(worker)
    # the note, and the recovery sweep a control worker triggers at start, both finished before the scrape
    done = samples[("agentsys_job_duration_seconds_count", (("agent", "control"), ("status", "finished")))]
    assert done == samples[("agentsys_jobs", (("queue", "control"), ("state", "finished")))] == 2
    assert samples[("agentsys_worker_rss_bytes", (("worker", name),))] == 123456789
    assert samples[("agentsys_worker_cpu_seconds_total", (("worker", name),))] == 4.5
    assert samples[("agentsys_worker_jobs_total", (("outcome", "successful"), ("worker", name)))] >= 1
    assert samples[("agentsys_workers", ())] == 1
    assert samples[("agentsys_queue_depth", (("queue", "control"),))] == 0
    assert samples[("agentsys_agent_enabled", (("agent", "price"),))] == 1
    assert samples[("agentsys_breaker_state", (("source", "http"), ("state", "closed")))] == 1
    assert samples[("agentsys_bangs_total", ())] == 0
    assert all(samples[("agentsys_scrape_error", (("part", p),))] == 0 for p in ("queues", "agents", "workers",
                                                                                 "bangs"))
    route = (("method", "GET"), ("route", "/tasks/{task_id}"), ("status", "200"))
    assert samples[("agentsys_http_requests_total", route)] >= 1
    assert samples[("agentsys_http_request_duration_seconds_count", route[:2])] >= 1

    again = _samples(client.get("/metrics").text)  # a job is observed once, not at every scrape
    assert again[("agentsys_job_duration_seconds_count", (("agent", "control"), ("status", "finished")))] == done


def test_metrics_count_bangs(client, stack):
    needs_pipeline()
    from tests.orchestrator.conftest import zigzag_csv
    from tests.support.pipeline import drain

    client.post("/tasks", json={"type": "replay", "params": {"csv": zigzag_csv(), "fast": 2, "mid": 3, "slow": 5}})
    drain(stack)
    with stack.db() as conn:
        bangs = conn.execute("SELECT count(*) FROM bang_events").fetchone()[0]
    samples = _samples(client.get("/metrics").text)
    assert bangs > 0 and samples[("agentsys_bangs_total", ())] == bangs
    durations = [k for k in samples if k[0] == "agentsys_job_duration_seconds_count"]
    assert {dict(k[1])["agent"] for k in durations} >= {"price", "indicator", "bang"}


def test_unmatched_paths_and_odd_methods_keep_labels_bounded(client, stack):
    for i in range(5):
        assert client.get(f"/nothing/{i}").status_code == 404
    assert client.request("BREW", "/tasks").status_code == 405
    samples = _samples(client.get("/metrics").text)
    routes = {dict(k[1]).get("route") for k in samples if k[0] == "agentsys_http_requests_total"}
    assert "unmatched" in routes and not any(r and r.startswith("/nothing") for r in routes)
    assert ("agentsys_http_requests_total", (("method", "OTHER"), ("route", "/tasks"), ("status", "405"))) in samples


def test_metrics_survive_a_missing_database(settings, stack):
    from fastapi.testclient import TestClient

    from orchestrator.app import create_app

    broken = settings.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(broken)) as client:
        tasks.queue(stack.redis, "control").enqueue("worker.jobs.note.run", kwargs={"task_id": "x"})
        samples = _samples(client.get("/metrics").text)
    assert samples[("agentsys_scrape_error", (("part", "bangs"),))] == 1
    assert samples[("agentsys_queue_depth", (("queue", "control"),))] == 1
