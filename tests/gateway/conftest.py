"""Gateways (and upstream apps) on real uvicorn servers on loopback ports, and WebSocket clients."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg.rows import dict_row
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.support.wait import until


@contextlib.contextmanager
def serving(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread, on a loopback port bound here; yields its URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=5, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        until(lambda: server.started or not thread.is_alive(), timeout=20, what="uvicorn to start")
        assert thread.is_alive(), "the server stopped while starting"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


@contextlib.contextmanager
def gateway_server(**overrides: Any) -> Iterator[str]:
    """A gateway over the test's stack (its environment), ready: subscribed, with a cursor."""
    settings = GatewaySettings(_env_file=None, **{"gateway_reconcile_interval": 0.2, **overrides})
    with serving(create_app(settings), ws_max_size=settings.gateway_ws_max_message) as url:
        until(lambda: httpx.get(f"{url}/readyz", timeout=5).json().get("cursor"), timeout=20,
              what="the gateway to subscribe and take a cursor")
        yield url


@pytest.fixture
def gateway(stack) -> Iterator[str]:
    with gateway_server() as url:
        yield url


class Client:
    """A WebSocket client that keeps what it received."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.conn: ClientConnection = connect(url.replace("http://", "ws://") + "/ws", open_timeout=10,
                                              close_timeout=2, **kwargs).__enter__()
        self.hello = self.recv()
        assert self.hello["kind"] == "hello"

    def send(self, message: dict[str, Any]) -> None:
        self.conn.send(json.dumps(message))

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(self.conn.recv(timeout=timeout))

    def until(self, check: Callable[[dict[str, Any]], bool], timeout: float = 10) -> list[dict[str, Any]]:
        """Messages up to and including the first that passes ``check``."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; received {[m.get('kind') for m in got]}")
            got.append(self.recv(timeout=left))
            if check(got[-1]):
                return got

    def subscribe(self, **filt: Any) -> dict[str, Any]:
        self.send({"type": "subscribe", **filt})
        return self.until(lambda m: m["kind"] in ("subscribed", "error"))[-1]

    def backfill(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
        """Every page of a backfill: (events, final cursor, live messages received meanwhile)."""
        events: list[dict[str, Any]] = []
        live: list[dict[str, Any]] = []
        after = None
        while True:
            self.send({"type": "backfill", "cursor": cursor, "after": after})
            got = self.until(lambda m: m["kind"] in ("backfill", "error"))
            reply = got.pop()
            assert reply["kind"] == "backfill", reply
            live += got
            events += reply["events"]
            after = reply["after"]
            if after is None:
                return events, reply["cursor"], live

    def close(self) -> None:
        self.conn.__exit__(None, None, None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def closed_code(conn: ClientConnection, timeout: float = 10) -> tuple[int | None, str | None]:
    """Read until the server closes; its close code and reason."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            conn.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, None)
    raise AssertionError("the server did not close the connection")


class RawClient:
    """A WebSocket client on a bare socket, so a test decides when bytes are read (or never)."""

    def __init__(self, url: str, *, rcvbuf: int = 4096) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(1)  # byte by byte: leave the frames after it unread
        assert self.buffer.startswith(b"HTTP/1.1 101"), self.buffer
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        assert len(data) < 126
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def frames(self, timeout: float = 10) -> Iterator[tuple[int, bytes]]:
        """(opcode, payload) of each frame the server sent, until it closes the connection."""
        self.sock.settimeout(timeout)
        while True:
            while True:
                frame = _frame(self.buffer)
                if frame is None:
                    break
                opcode, payload, used = frame
                self.buffer = self.buffer[used:]
                yield opcode, payload
            data = self.sock.recv(1 << 20)
            if not data:
                return
            self.buffer += data

    def close_frame(self, timeout: float = 10) -> tuple[int, str]:
        for opcode, payload in self.frames(timeout):
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()
        raise AssertionError("the server closed the connection without a close frame")

    def close(self) -> None:
        self.sock.close()


def _frame(data: bytes) -> tuple[int, bytes, int] | None:
    if len(data) < 2:
        return None
    opcode, size, at = data[0] & 0x0F, data[1] & 0x7F, 2
    if size == 126:
        if len(data) < 4:
            return None
        size, at = int.from_bytes(data[2:4], "big"), 4
    elif size == 127:
        if len(data) < 10:
            return None
        size, at = int.from_bytes(data[2:10], "big"), 10
    if len(data) < at + size:
        return None
    return opcode, data[at:at + size], at + size


def metric(url: str, name: str, labels: str = "") -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def bang_message(events: list[dict[str, Any]], shard: int = 0) -> str:
    """A bang message as docs/interfaces.md gives it."""
    return json.dumps({"kind": "bang", "shard": shard, "committed_at": time.time(), "events": events})


def event_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "symbol": row["symbol"], "ts": row["ts"].isoformat(), "from_state": row["from_state"],
            "to_state": row["to_state"], "price": row["price"], "ema_fast": row["ema_fast"],
            "ema_mid": row["ema_mid"], "ema_slow": row["ema_slow"]}


INSERT = """INSERT INTO bang_events (symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow)
            VALUES (%s, %s, 'FLAT', 'BULL', 1.5, 1.4, 1.3, 1.2)
            RETURNING id, symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow, txid::text AS txid"""
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Writer:
    """One session writing bang rows in its own transactions (like one bang job)."""

    def __init__(self, stack, symbol: str) -> None:
        self.stack, self.symbol = stack, symbol
        self.conn = psycopg.connect(stack.database_url, row_factory=dict_row)
        self.pending: list[dict] = []
        self.n = 0

    def insert(self, count: int = 1) -> list[dict]:
        rows = []
        for _ in range(count):
            self.n += 1
            rows.append(self.conn.execute(INSERT, (self.symbol, T0 + timedelta(minutes=self.n))).fetchone())
        self.pending += rows
        return rows

    def commit(self, *, publish: bool = True) -> list[dict]:
        self.conn.commit()
        rows, self.pending = self.pending, []
        if publish:
            self.publish(rows)
        return rows

    def publish(self, rows: list[dict]) -> None:
        if rows:
            self.stack.redis.publish(self.stack.keys.channel_bangs, bang_message([event_row(r) for r in rows]))

    def close(self) -> None:
        self.conn.close()
