"""/api/* through the gateway to a small upstream app on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.gateway.conftest import gateway_server, metric, serving

TOKEN = "Bearer upstream-token-0123456789abcdef"


def upstream_app(release: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"method": request.method, "raw_path": request.scope["raw_path"].decode(),
                             "query": request.url.query, "headers": dict(request.headers),
                             "body_bytes": len(body), "body_head": body[:20].decode(errors="replace")},
                            headers={"X-Upstream": "yes", "Connection": "close, X-Hop", "X-Hop": "1"})

    @app.post("/tasks", status_code=202)
    def created() -> JSONResponse:
        return JSONResponse({"id": "abc"}, status_code=202, headers={"Location": "/tasks/abc"})

    @app.get("/missing")
    def missing() -> JSONResponse:
        return JSONResponse({"detail": "unknown task 'x'"}, status_code=404)

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse((f"line {i}\n".encode() for i in range(1000)), media_type="text/plain")

    @app.get("/slow")
    async def slow() -> JSONResponse:
        await asyncio.to_thread(release.wait, 30)  # set by the test before the servers stop
        return JSONResponse({"late": True})

    return app


@pytest.fixture
def proxied(stack):
    release = threading.Event()
    with serving(upstream_app(release)) as upstream, \
            gateway_server(orchestrator_url=upstream, proxy_read_timeout=1.0) as gateway:
        try:
            yield gateway
        finally:
            release.set()  # the upstream's slow request ends before the servers stop


def test_requests_and_answers_pass_through(proxied):
    with httpx.Client(base_url=proxied, timeout=10) as http:
        body = b"symbol,ts,price\n" + b"AAPL,2026-01-05T09:30:00Z,185.2\n" * 100_000  # ~3 MB, streamed
        r = http.post("/api/echo/symbols/BTC%2FUSD/history?from=2026-01-01T00:00:00Z&limit=5", content=body,
                      headers={"Authorization": TOKEN, "Content-Type": "text/csv", "Connection": "keep-alive, X-Drop",
                               "X-Drop": "secret-hop", "TE": "trailers", "X-Custom": "kept"})
        assert r.status_code == 200
        seen = r.json()
        assert seen["method"] == "POST"
        assert seen["raw_path"] == "/echo/symbols/BTC%2FUSD/history"
        assert seen["query"] == "from=2026-01-01T00:00:00Z&limit=5"
        assert seen["body_bytes"] == len(body) and seen["body_head"] == "symbol,ts,price\nAAPL"
        headers = seen["headers"]
        assert headers["authorization"] == TOKEN and headers["x-custom"] == "kept"
        assert headers["content-type"] == "text/csv"
        assert "x-drop" not in headers and "te" not in headers
        assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-host"] == proxied.removeprefix("http://")
        assert r.headers["x-upstream"] == "yes" and "x-hop" not in r.headers

        r = http.post("/api/tasks", json={})
        assert r.status_code == 202 and r.headers["location"] == "/api/tasks/abc"
        r = http.get("/api/missing")
        assert r.status_code == 404 and r.json() == {"detail": "unknown task 'x'"}
        r = http.get("/api/stream")
        assert r.text == "".join(f"line {i}\n" for i in range(1000))
        r = http.get("/api/slow")
        assert r.status_code == 504 and "in time" in r.json()["detail"]
    assert metric(proxied, "gateway_proxy_requests_total", 'outcome="answered"') == 4
    assert metric(proxied, "gateway_proxy_requests_total", 'outcome="timeout"') == 1


def test_orchestrator_down_is_a_502_json(stack):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # a port nobody listens on
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with gateway_server(orchestrator_url=down) as gateway:
            r = httpx.get(f"{gateway}/api/tasks", timeout=10)
            assert r.status_code == 502
            assert r.headers["content-type"] == "application/json"
            assert r.json() == {"detail": f"the orchestrator at {down} cannot be reached"}
            assert metric(gateway, "gateway_proxy_requests_total", 'outcome="unreachable"') == 1
