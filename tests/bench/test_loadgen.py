"""The benchmarks' load generator: fixed requests over keep-alive connections, statuses counted right."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import loadgen


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every request of a lane on one connection
    seen: list[tuple[str, str, dict]] = []
    connections: set[int] = set()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers["Authorization"], body))
        self.connections.add(self.client_address[1])
        payload = json.dumps({"n": len(self.seen), "pad": "x" * 70_000}).encode()  # several reads per answer
        self.send_response(202 if body.get("ok") else 422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Echo.seen, _Echo.connections = [], set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_lanes_send_the_fixed_request_and_read_each_whole_answer(server):
    async def go() -> list[int]:
        lanes = [await loadgen.connect(server) for _ in range(3)]
        ok = loadgen.request_bytes(server, "POST", "/tasks", {"Authorization": "Bearer t"}, {"ok": True})
        bad = loadgen.request_bytes(server, "POST", "/tasks", {"Authorization": "Bearer t"}, {"ok": False})

        async def lane(conn: loadgen.Lane) -> list[int]:
            return [await conn.send(ok if i % 4 else bad) for i in range(8)]

        try:
            return [s for got in await asyncio.gather(*(lane(c) for c in lanes)) for s in got]
        finally:
            for conn in lanes:
                conn.close()

    statuses = asyncio.run(go())
    assert sorted(statuses) == [202] * 18 + [422] * 6
    assert len(_Echo.seen) == 24 and {(p, a) for p, a, _ in _Echo.seen} == {("/tasks", "Bearer t")}
    assert len(_Echo.connections) == 3  # one connection per lane, kept alive


def test_only_plain_http():
    with pytest.raises(ValueError, match="plain http"):
        asyncio.run(loadgen.connect("https://127.0.0.1:1"))
