"""A lean HTTP/1.1 load generator: keep-alive connections that each send one fixed request at a time.

The load process shares this 2-core machine with the server under test, so what the client
spends per request is taken from the server. httpx spends about 0.4 ms of CPU per request, as
much as the orchestrator itself, and capped any server near 2,300 requests/s; a request here is
one ``write`` of prebuilt bytes and a header scan, a few microseconds. It speaks only what the
benchmarks need: plain http, a fixed request, responses with a Content-Length.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, cast
from urllib.parse import urlsplit

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def request_bytes(url: str, method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
    """The whole request, built once and sent as is every time."""
    host = urlsplit(url).netloc
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Lane(asyncio.Protocol):
    """One connection; ``send`` returns the status of the response to the request it wrote."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end])
        found = _LENGTH.search(head)
        if found is None:
            self.waiter.set_exception(RuntimeError(f"a response without Content-Length: {head[:200]!r}"))
            return
        size = end + 4 + int(found.group(1))
        if len(self.buffer) >= size:
            del self.buffer[:size]
            self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    async def send(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(url: str) -> Lane:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"the load generator speaks plain http to a host: {url}")
    _, lane = await asyncio.get_running_loop().create_connection(Lane, parts.hostname, parts.port or 80)
    return lane
