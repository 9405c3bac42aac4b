"""A local stand-in for Binance's klines endpoint, on 127.0.0.1 and a free port.

It answers ``GET /api/v3/klines`` in Binance's documented format and semantics (klines
with ``startTime <= openTime <= endTime``, at most ``limit``, prices as strings), and
``{"code": -1121, "msg": "Invalid symbol."}`` for unknown symbols. A test queues
scripted replies (errors, 429s, slow answers) for the next requests with ``then``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

INTERVAL_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000}
SYMBOLS = {"BTCUSDT", "ETHUSDT"}


def close_at(open_ms: int) -> float:
    """The fake market's close of the kline opening at open_ms (exact in 8 decimals)."""
    return round(100 + (open_ms // 1000 % 100_000) / 1000, 3)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON; None means the normal klines answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow server)
    raw: bytes | None = None


@dataclass
class Seen:
    at: float  # time.monotonic() on arrival
    path: str
    params: dict[str, str]


class FakeBinance:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: list[Reply] = []
        self.always: Reply | None = None
        self.closing = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client that timed out hung up
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def then(self, *replies: Reply) -> FakeBinance:
        with self.lock:
            self.script.extend(replies)
        return self

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append(Seen(time.monotonic(), url.path, params))
            reply = self.script.pop(0) if self.script else (self.always or Reply())
        if reply.delay:
            self.closing.wait(reply.delay)
        if reply.raw is not None:
            data = reply.raw
        else:
            body = reply.body
            if body is None:
                reply, body = self.klines(url.path, params)
            data = json.dumps(body).encode()
        h.send_response(reply.status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    def klines(self, path: str, params: dict[str, str]) -> tuple[Reply, Any]:
        if path != "/api/v3/klines":
            return Reply(404), {"code": -1, "msg": "Not found."}
        if params.get("symbol") not in SYMBOLS:
            return Reply(400), {"code": -1121, "msg": "Invalid symbol."}
        if params.get("interval") not in INTERVAL_MS:
            return Reply(400), {"code": -1120, "msg": "Invalid interval."}
        step = INTERVAL_MS[params["interval"]]
        limit = min(int(params.get("limit", 500)), 1000)
        first = -(-int(params["startTime"]) // step) * step
        end = int(params["endTime"])
        rows = []
        for open_ms in range(first, end + 1, step):
            if len(rows) == limit:
                break
            close = f"{close_at(open_ms):.8f}"
            rows.append([open_ms, close, close, close, close, "1.00000000", open_ms + step - 1, "100.0", 3,
                         "0.5", "50.0", "0"])
        return Reply(), rows

    def klines_requests(self) -> list[dict[str, str]]:
        return [s.params for s in self.requests if s.path == "/api/v3/klines"]

    def close(self) -> None:
        self.closing.set()  # release slow replies
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class FlakyBinance(FakeBinance):
    """The fake Binance, answering 503 for the market symbols in ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()

    def klines(self, path: str, params: dict[str, str]) -> tuple[Reply, Any]:
        if params.get("symbol") in self.down:
            return Reply(503), {"code": -1001, "msg": "Internal error; unable to process your request."}
        return super().klines(path, params)
