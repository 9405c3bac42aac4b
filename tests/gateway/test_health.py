from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings


def test_healthz_and_readyz(stack):
    with TestClient(create_app(GatewaySettings(_env_file=None))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] == "subscribed"


def test_refuses_to_bind_off_loopback_without_token(monkeypatch):
    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="API_TOKEN is required"):
        GatewaySettings(gateway_host="0.0.0.0", _env_file=None)
