"""``WS /ws``: live events with a per-client filter, and backfill of the bang events a client missed.

Protocol: JSON text frames both ways.

Client to server, at any time:

- ``{"type": "subscribe", "kinds": ["bang", "update", "task", "heartbeat"], "symbols": ["AAPL"] | null}``
  sets (replaces) the filter. ``kinds`` defaults to all four. ``symbols`` applies to bang
  events and to the entries of updates (tasks and heartbeats are never filtered by
  symbol); null means every symbol; an object gives each its own:
  ``{"bang": null, "update": ["AAPL", "MSFT"]}``. Answered with ``{"kind": "subscribed", ...}``;
  every message after that answer follows the new filter. Until the first subscribe a
  client receives nothing but answers.
- ``{"type": "backfill", "cursor": "<cursor>" | null, "after": "<token>" | null}`` asks for the
  bang events (of the current symbol filter; subscribe to ``bang`` first) committed since
  ``cursor``, read from PostgreSQL. Answered with ``{"kind": "backfill", "events": [...],
  "cursor": "...", "after": "<token>" | null}``; a non-null ``after`` means more: ask again
  with the same ``cursor`` and that ``after``. Without a cursor: the newest events, and a
  cursor to go on from.
- ``{"type": "ping"}``: answered with ``{"kind": "pong"}``.

Server to client:

- ``{"kind": "hello", "kinds": [...], "buffer": N}`` first.
- the Pub/Sub messages of ``docs/interfaces.md``, each with its ``kind`` (``bang``,
  ``update``, ``task``, ``heartbeat``), cut to the filter. Bang messages carry
  ``"cursor"``: keep the last one received (from bang and backfill messages); after a
  reconnect, subscribe, then backfill from it, and de-duplicate events by ``id``.
  Bang messages with ``"source": "db"`` carry events whose Pub/Sub message had not come
  (see :mod:`gateway.bangs`).
- ``{"kind": "error", "error": "..."}`` for a request the server refused.

Browsers must come from the page's own origin (or ``GATEWAY_WS_ORIGINS``): the stream has
no token, so another site's page is refused at the handshake (403).

A client whose ``N`` queued messages are not taken fast enough is closed with code 4008
(reason: it fell behind); the others never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import psycopg
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from agentsys.logging import get_logger
from gateway import protocol
from gateway.bangs import BangTail
from gateway.broadcast import Broadcaster, Subscriber
from gateway.metrics import GatewayMetrics
from gateway.protocol import ProtocolError
from gateway.settings import GatewaySettings

log = get_logger("gateway.ws")
router = APIRouter()


@router.websocket("/ws")
async def live(ws: WebSocket) -> None:
    state = ws.app.state
    settings: GatewaySettings = state.settings
    broadcaster: Broadcaster = state.broadcaster
    origin = ws.headers.get("origin")
    if origin and urlsplit(origin).netloc != ws.headers.get("host") and origin not in settings.ws_origin_list:
        await ws.close(code=1008)  # before the handshake: a 403; another site's page may not read the stream
        return
    await ws.accept()
    async with broadcaster.subscribe(maxsize=settings.gateway_client_buffer) as sub:
        state.metrics.clients.inc()
        try:
            sub.offer(protocol.dumps({"kind": "hello", "kinds": list(protocol.KINDS),
                                      "buffer": settings.gateway_client_buffer}))
            tasks = [asyncio.create_task(_read(ws, sub, state.tail, settings, state.metrics)),
                     asyncio.create_task(_write(ws, sub)),
                     asyncio.create_task(sub.overflowed.wait())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, WebSocketDisconnect | OSError):
                    log.warning("websocket task failed", error=repr(outcome))
        finally:
            state.metrics.clients.dec()
    if sub.overflowed.is_set():
        state.metrics.dropped.inc()
        reason = f"too slow: more than {settings.gateway_client_buffer} messages waiting"
        # It may never read again: its close frame waits behind what it has not read.
        with contextlib.suppress(TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
            await asyncio.wait_for(ws.close(code=protocol.CLOSE_TOO_SLOW, reason=reason),
                                   settings.gateway_close_timeout)


async def _write(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        await ws.send_text(await sub.queue.get())


async def _read(ws: WebSocket, sub: Subscriber, tail: BangTail, settings: GatewaySettings,
                metrics: GatewayMetrics) -> None:
    while True:
        frame = await ws.receive()
        if frame["type"] == "websocket.disconnect":
            return
        try:
            message = protocol.parse(frame.get("text") or frame.get("bytes") or b"")
            kind = message["type"]
            if kind == "subscribe":
                sub.filter = protocol.parse_filter(message)
                sub.offer(protocol.dumps({"kind": "subscribed", **sub.filter.describe()}))
            elif kind == "backfill":
                metrics.backfills.inc()
                sub.offer(protocol.dumps(await _backfill(message, sub, tail, settings)))
            elif kind == "ping":
                sub.offer('{"kind":"pong"}')
            else:
                raise ProtocolError(f"unknown type {kind[:40]!r}: expected subscribe, backfill or ping")
        except ProtocolError as error:
            sub.offer(protocol.dumps({"kind": "error", "error": str(error)}))


async def _backfill(message: dict[str, Any], sub: Subscriber, tail: BangTail,
                    settings: GatewaySettings) -> dict[str, Any]:
    cursor = protocol.parse_cursor(message.get("cursor"))
    after = protocol.parse_after(message.get("after"))
    if "bang" not in sub.filter.kinds:
        raise ProtocolError("subscribe to kind 'bang' before asking for a backfill")
    symbols = sub.filter.symbols_for("bang")
    try:
        if cursor is None:
            events = await tail.recent(symbols=symbols, limit=settings.gateway_recent_bangs)
            return {"kind": "backfill", "events": events, "cursor": tail.cursor(sub.floor), "after": None}
        # Until the last page is queued, cursors sent to this client must not pass its own.
        sub.floor = cursor if sub.floor is None else min(sub.floor, cursor)
        events, token = await tail.backfill(cursor=cursor, after=after, symbols=symbols,
                                            limit=settings.gateway_backfill_limit)
    except (psycopg.Error, OSError) as error:  # PostgreSQL unreachable or refusing
        log.warning("backfill failed", error=str(error))
        raise ProtocolError("backfill unavailable: the database cannot be reached; retry later") from None
    if token is not None:
        return {"kind": "backfill", "events": events, "cursor": tail.cursor(sub.floor), "after": token}
    sub.floor = None
    return {"kind": "backfill", "events": events, "cursor": tail.cursor(), "after": None}
