from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings
from postgres_service import cluster
from tests.support.servers import with_database


def test_healthz_and_readyz(stack):
    with TestClient(create_app(OrchestratorSettings())) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"redis": "ok", "postgres": "ok", "migrations": "ok"}


def test_readyz_reports_pending_migrations(stack, servers):
    name = f"e_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, name)
    try:
        settings = OrchestratorSettings(database_url=with_database(servers.pg_url, name))
        with TestClient(create_app(settings)) as client:
            ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["migrations"] == "pending"
    finally:
        cluster.drop_database(servers.pg_url, name)


def test_refuses_to_bind_off_loopback_without_token(monkeypatch):
    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="API_TOKEN is required"):
        OrchestratorSettings(api_host="0.0.0.0", _env_file=None)


def test_a_real_process_logs_uvicorns_records_as_json(stack, tmp_path):
    """uvicorn's own records (start-up, shutdown) leave in the same JSON shape as ours."""
    import json

    import httpx

    from tests.orchestrator.conftest import serving

    log = tmp_path / "orchestrator.log"
    with serving(stack, log, token="log-shape-token-0123456789") as url:
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line is JSON
    uvicorn = [line for line in lines if line.get("logger", "").startswith("uvicorn")]
    assert any("Uvicorn running on" in line["event"] for line in uvicorn), lines
    for line in uvicorn:
        assert line["service"] == "orchestrator" and line["level"] in ("info", "warning", "error")
        assert line["timestamp"].endswith("Z") and isinstance(line["pid"], int)
    assert "log-shape-token" not in log.read_text()
