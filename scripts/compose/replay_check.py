"""Replay a generated CSV through a running stack and check its bangs, end to end.

    python scripts/compose/replay_check.py --api http://127.0.0.1:8001 [--ws ws://127.0.0.1:8081/ws]

POSTs the CSV to ``/tasks/replay`` with curl (bearer API_TOKEN from the environment), waits for the
task to finish, then compares the bang events ``GET /events`` returns for its symbols with
a reference computed here (TA-Lib's EMA convention, DESIGN section 2). With ``--ws`` it
also subscribes to the gateway's stream before submitting and checks that every expected
bang arrives there. Prints one JSON line: timings and a status per check (pass, or fail with
the reason); exits 1 when a check fails.
Only the standard library and ``websockets`` (in the project's venv) are used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

FAST, MID, SLOW = 9, 21, 55
START = datetime(2026, 1, 5, tzinfo=UTC)


def prices(symbols: int, bars: int, prefix: str) -> dict[str, list[float]]:
    """Deterministic waves, one period per symbol, so every symbol changes state several times."""
    out = {}
    for i in range(symbols):
        period = 60 + 7 * (i % 13)
        out[f"{prefix}{i:04d}"] = [round(100 + 10 * math.sin(2 * math.pi * t / period) + 0.01 * t + 0.37 * math.sin(t * 1.7 + i),
                                   4) for t in range(bars)]
    return out


def ema(values: list[float], n: int) -> list[float | None]:
    out: list[float | None] = [None] * len(values)
    if len(values) < n:
        return out
    alpha = 2 / (n + 1)
    current = sum(values[:n]) / n
    out[n - 1] = current
    for t in range(n, len(values)):
        current = alpha * values[t] + (1 - alpha) * current
        out[t] = current
    return out


def expected_bangs(values: list[float]) -> list[tuple[int, str, str]]:
    f, m, s = ema(values, FAST), ema(values, MID), ema(values, SLOW)
    bangs, previous = [], None
    for t in range(len(values)):
        if f[t] is None or m[t] is None or s[t] is None:
            continue
        state = "BULL" if f[t] > m[t] > s[t] else "BEAR" if f[t] < m[t] < s[t] else "FLAT"
        if previous is not None and state != previous and state in ("BULL", "BEAR"):
            bangs.append((t, previous, state))
        previous = state
    return bangs


def csv_text(series: dict[str, list[float]]) -> str:
    lines = ["symbol,ts,price"]
    for symbol, values in series.items():
        for t, p in enumerate(values):
            lines.append(f"{symbol},{(START + timedelta(minutes=t)).isoformat().replace('+00:00', 'Z')},{p}")
    return "\n".join(lines) + "\n"


def request(method: str, url: str, *, body: bytes | None = None, content_type: str | None = None,
            timeout: float = 90) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {os.environ['API_TOKEN']}"}
    if content_type:
        headers["Content-Type"] = content_type
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 (checked above)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"null")
        except ValueError:
            return error.code, None


def curl_post(url: str, body: bytes, content_type: str) -> tuple[int, Any]:
    """POST with curl, as a user of the original design would (the CSV as the request body)."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "90", "-X", "POST", url, "-H", f"Authorization: Bearer {os.environ['API_TOKEN']}",
         "-H", f"Content-Type: {content_type}", "--data-binary", "@-", "-w", "\n%{http_code}"],
        input=body, capture_output=True, check=False)
    text, _, code = out.stdout.decode().rpartition("\n")
    try:
        return int(code), json.loads(text or "null")
    except ValueError:
        return int(code or 0), text[:300] or out.stderr.decode().strip()[:300]


class WsListener(threading.Thread):
    """Collects bang events for our symbols from the gateway's WS /ws (gateway/ws.py protocol)."""

    def __init__(self, url: str, symbols: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.symbols = url, symbols
        self.ready = threading.Event()
        self.error: str | None = None
        self.ids: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            from websockets.sync.client import connect
        except ImportError:
            self.error = "fail: the websockets package is not installed (make setup)"
            self.ready.set()
            return
        try:
            with connect(self.url, open_timeout=10, max_size=None,
                         additional_headers={"Authorization": f"Bearer {os.environ['API_TOKEN']}"}) as ws:
                hello = json.loads(ws.recv(timeout=10))
                if hello.get("kind") != "hello":
                    self.error = f"fail: unexpected first message {str(hello)[:80]}"
                    return
                ws.send(json.dumps({"type": "subscribe", "kinds": ["bang"], "symbols": self.symbols}))
                while json.loads(ws.recv(timeout=10)).get("kind") != "subscribed":
                    pass
                self.ready.set()
                while not self.stop.is_set():
                    try:
                        message = json.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if message.get("kind") == "bang":
                        self.ids.update(e["id"] for e in message.get("events", []) if e.get("symbol") in self.symbols)
        except Exception as error:  # reported in the result line, which fails the check
            self.error = f"fail: {type(error).__name__}: {error}"[:200]
        finally:
            self.ready.set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="orchestrator base URL")
    parser.add_argument("--ws", help="gateway WebSocket URL (ws://.../ws)")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--prefix", default=f"CT{secrets.token_hex(2).upper()}",
                        help="symbol prefix (default: a new one per run, so a rerun on the same stack makes new bangs)")
    args = parser.parse_args()
    result: dict[str, Any] = {"symbols": args.symbols, "bars": args.bars, "prefix": args.prefix}
    series = prices(args.symbols, args.bars, args.prefix)
    expected = {s: expected_bangs(v) for s, v in series.items()}
    result["expected_bangs"] = sum(len(b) for b in expected.values())
    body = csv_text(series).encode()

    listener = None
    if args.ws:
        listener = WsListener(args.ws, list(series))
        listener.start()
        listener.ready.wait(20)

    started = time.monotonic()
    status, task = curl_post(f"{args.api}/tasks/replay?fast={FAST}&mid={MID}&slow={SLOW}", body, "text/csv")
    if status != 202:
        result["replay"] = f"fail: POST /tasks/replay answered {status}: {str(task)[:300]}"
        print(json.dumps(result))
        return 1
    task_id, deadline = task["id"], started + args.timeout
    while True:
        status, task = request("GET", f"{args.api}/tasks/{task_id}?wait=30")
        if status == 200 and task.get("state") in ("finished", "failed", "canceled", "stopped"):
            break
        if time.monotonic() > deadline:
            result["replay"] = f"fail: task {task_id} not finished in {args.timeout:.0f} s (state {task.get('state')})"
            print(json.dumps(result))
            return 1
    result["replay_seconds"] = round(time.monotonic() - started, 3)
    result["symbol_ticks_per_second"] = round(args.symbols * args.bars / result["replay_seconds"])
    if task["state"] != "finished":
        result["replay"] = f"fail: task {task_id} ended {task['state']}: {task.get('error')}"
        print(json.dumps(result))
        return 1

    status, events = request("GET", f"{args.api}/events?limit=10000")
    if status != 200:
        result["replay"] = f"fail: GET /events answered {status}"
        print(json.dumps(result))
        return 1
    got: dict[str, set[tuple[str, str, str]]] = {s: set() for s in series}
    ids = set()
    for e in events:
        if e["symbol"] in got:
            got[e["symbol"]].add((e["ts"].replace("+00:00", "Z"), e["from_state"], e["to_state"]))
            ids.add(e["id"])
    want = {s: {((START + timedelta(minutes=t)).isoformat().replace("+00:00", "Z"), a, b) for t, a, b in bangs}
            for s, bangs in expected.items()}
    wrong = [s for s in series if got[s] != want[s]]
    result["api_bangs"] = sum(len(g) for g in got.values())
    result["replay"] = "pass" if not wrong else f"fail: bangs differ from the reference for {wrong[:5]}"

    if listener is not None:
        if listener.error:
            result["ws"] = listener.error
        else:
            ws_deadline = time.monotonic() + 30
            while not ids <= listener.ids and time.monotonic() < ws_deadline and listener.error is None:
                time.sleep(0.1)
            listener.stop.set()
            listener.join(5)
            result["ws_bangs"] = len(listener.ids & ids)
            if listener.error:
                result["ws"] = listener.error
            else:
                result["ws"] = "pass" if ids <= listener.ids else f"fail: {len(ids - listener.ids)} bangs missing on the WebSocket"
    print(json.dumps(result))
    return 0 if result["replay"] == "pass" and not str(result.get("ws", "")).startswith("fail") else 1


if __name__ == "__main__":
    sys.exit(main())
