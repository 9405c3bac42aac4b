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
