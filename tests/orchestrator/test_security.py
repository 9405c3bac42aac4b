"""Bearer tokens on every mutating route (enumerated from app.routes), read tokens, body limits,
CORS, JSON errors (never a stack trace), and a token that never reaches the logs."""

from __future__ import annotations

import io
import logging
import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from agentsys.logging import configure_logging
from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings
from tests.orchestrator.conftest import AUTH, TOKEN

MUTATING = {"POST", "PUT", "DELETE", "PATCH"}
OPEN_ROUTES = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PATH_VALUES = {"task_id": "0123456789abcdef", "name": "price", "symbol": "AAA"}


def _routes(app, methods):
    """(method, concrete path) of every API route of the app (included routers flattened)."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            for method in sorted(route.methods & methods):
                path = re.sub(r"{(\w+)(:\w+)?}", lambda m: PATH_VALUES[m.group(1)], route.path)
                found.append((method, path))
    return found


def _state(stack):
    with stack.db() as conn:
        rows = conn.execute("SELECT (SELECT count(*) FROM task_runs), (SELECT count(*) FROM symbols)").fetchone()
    return rows, sorted(stack.redis.keys("*"))


def test_every_mutating_route_needs_the_token(client, anon, stack):
    routes = _routes(client.app, MUTATING)
    assert len(routes) >= 10, routes
    before = _state(stack)
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):
            r = anon.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.json() == {"detail": "missing or invalid bearer token"}
            assert r.headers["www-authenticate"] == "Bearer"
    assert _state(stack) == before
    for method, path in routes:
        assert client.request(method, path, json={}).status_code != 401, (method, path)


def test_reads_are_open_unless_required(stack, settings):
    reads = [r for r in _routes(create_app(settings), {"GET"}) if r[1] not in OPEN_ROUTES]
    assert len(reads) >= 10
    with TestClient(create_app(settings)) as anon:
        for _, path in reads:
            assert anon.get(path).status_code != 401, path
    strict = settings.model_copy(update={"api_read_token_required": True})
    with TestClient(create_app(strict)) as anon, TestClient(create_app(strict), headers=AUTH) as reader:
        for _, path in reads:
            assert anon.get(path).status_code == 401, path
            assert reader.get(path).status_code != 401, path
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
            assert anon.get(path).status_code == 200, path


def test_read_token_needs_a_token(monkeypatch):
    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="API_READ_TOKEN_REQUIRED"):
        OrchestratorSettings(api_read_token_required=True, _env_file=None)


def test_without_a_token_on_loopback_reads_are_served_and_writes_refused(stack, monkeypatch):
    monkeypatch.delenv("API_TOKEN", raising=False)
    with TestClient(create_app(OrchestratorSettings(_env_file=None))) as client:
        refused = client.post("/tasks", json={"description": "dev"}, headers={"Authorization": "Bearer anything"})
        assert refused.status_code == 401 and "no API_TOKEN" in refused.json()["detail"]
        assert client.put("/agents/price", json={"enabled": False}).status_code == 401
        assert client.get("/tasks").status_code == 200


def test_bodies_over_the_limit_are_413(stack, settings):
    small = settings.model_copy(update={"api_max_body_bytes": 2048})
    with TestClient(create_app(small), headers=AUTH) as client:
        big = {"description": "x" * 4000}
        r = client.post("/tasks", json=big)
        assert r.status_code == 413 and "detail" in r.json()

        def chunks():
            yield b'{"description": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        r = client.post("/tasks", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        r = client.post("/tasks/replay", content=b"symbol,ts,price\n" + b"A" * 5000, headers={"Content-Type": "text/csv"})
        assert r.status_code == 413 and "detail" in r.json()
        assert client.post("/tasks", json={"description": "fits"}).status_code == 202


def test_cors_closed_unless_configured(stack, settings):
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(settings)) as client:
        r = client.options("/tasks", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in client.get("/agents", headers={"Origin": "https://x"}).headers
    opened = settings.model_copy(update={"cors_origins": "https://dash.example, https://other.example"})
    with TestClient(create_app(opened)) as client:
        r = client.options("/tasks", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://dash.example"
        r = client.get("/agents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_unhandled_errors_are_json_500_and_the_token_is_never_logged(stack, settings):
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("orchestrator", level="DEBUG", fmt="json", stream=stream)
    try:
        app = create_app(settings)

        @app.post("/boom")
        def boom(authorization: str | None = None) -> None:
            secret = f"token is {TOKEN}"  # a local that structlog's tracebacks would print
            raise RuntimeError("boom " + secret[:5])

        with TestClient(app, headers=AUTH) as client:
            r = client.post("/boom")
            assert r.status_code == 500 and r.json() == {"detail": "internal error"}
            assert "Traceback" not in r.text
            client.post("/tasks", json={"description": "logged?"})
            client.post("/tasks", headers={"Authorization": f"Bearer {TOKEN}-wrong"}, json={})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    out = stream.getvalue()
    assert "unhandled error" in out and "RuntimeError" in out
    assert TOKEN not in out
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


def test_unreachable_redis_is_a_json_503(stack, settings):
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down)) as client:
        r = client.get("/agents")
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]
