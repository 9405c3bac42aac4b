"""One Redis Pub/Sub subscription per process, fanned out to in-process subscribers.

Shaped after encode/broadcaster: the Broadcaster is an async context manager that owns
the subscription and its listener task, and ``subscribe()`` is an async context manager
that ties a subscriber's lifetime to its caller (a WebSocket). Fan-out never waits on a
subscriber: each has a bounded queue, and one that is full is marked ``overflowed`` (its
owner closes it) instead of slowing the others down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agentsys.logging import get_logger
from gateway.metrics import GatewayMetrics
from gateway.protocol import Columns, Filter, expand_columns

log = get_logger("gateway.broadcast")

RETRY_FIRST, RETRY_MAX = 0.2, 5.0
"""Seconds before re-subscribing after a lost Redis connection: first, and at most (doubling)."""

Render = Callable[[str, dict[str, Any], "Subscriber", dict[Hashable, str | None]], str | None]
Hook = Callable[[dict[str, Any]], dict[str, Any] | None]


class Subscriber:
    """One client's end: its filter and a bounded queue of rendered messages."""

    def __init__(self, *, maxsize: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.filter = Filter()
        self.floor: int | None = None
        """While a backfill runs: the cursor it started from (cursors sent meanwhile stay at or below it)."""
        self.overflowed = asyncio.Event()

    def offer(self, text: str) -> bool:
        """Queue a message without waiting; on a full queue, mark the subscriber overflowed."""
        if self.overflowed.is_set():
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True


class Broadcaster:
    """Relay of the channels ``{kind: channel}`` to the subscribers whose filter wants them."""

    def __init__(self, redis: Redis, channels: Mapping[str, str], *, render: Render, metrics: GatewayMetrics,
                 hooks: Mapping[str, Hook] | None = None) -> None:
        self._redis = redis
        self._kinds = {channel: kind for kind, channel in channels.items()}
        self._render = render
        self._hooks = dict(hooks or {})
        self._metrics = metrics
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def __aenter__(self) -> Broadcaster:
        self._task = asyncio.create_task(self._listen(), name="gateway-pubsub")
        with contextlib.suppress(TimeoutError):  # Redis down: start anyway, the listener retries
            await asyncio.wait_for(self.subscribed.wait(), timeout=5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self, *, maxsize: int) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(maxsize=maxsize)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def fanout(self, kind: str, message: dict[str, Any]) -> int:
        """Queue a message for every subscriber that wants it; returns how many got it."""
        cache: dict[Hashable, str | None] = {}
        sent = 0
        for subscriber in tuple(self._subscribers):
            text = self._render(kind, message, subscriber, cache)
            if text is not None and subscriber.offer(text):
                sent += 1
        self._metrics.relayed.labels(kind).inc(sent)
        return sent

    def dispatch(self, channel: str, data: bytes | str) -> None:
        kind = self._kinds.get(channel.decode() if isinstance(channel, bytes) else channel)
        if kind is None:
            return
        self._metrics.received.labels(kind).inc()
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not _well_formed(kind, message):
            self._metrics.malformed.labels(kind).inc()
            return
        message.setdefault("kind", kind)
        if kind == "update":
            message = expand_columns(message)
        hook = self._hooks.get(kind)
        found = hook(message) if hook is not None else message
        if found is not None:
            self.fanout(kind, found)

    async def _listen(self) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(*self._kinds)
                    self.subscribed.set()
                    delay = RETRY_FIRST
                    async for item in pubsub.listen():
                        if item["type"] == "message":
                            self.dispatch(item["channel"], item["data"])
            except (RedisError, OSError) as error:
                self.subscribed.clear()
                log.warning("redis subscription lost; retrying", error=str(error), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)


def _well_formed(kind: str, message: dict[str, Any]) -> bool:
    if kind == "bang":
        events = message.get("events")
        return isinstance(events, list) and all(isinstance(e, dict) and isinstance(e.get("id"), int) for e in events)
    if kind == "update":
        return isinstance(message.get("symbols"), dict) or Columns.well_formed(message.get("columns"))
    return True
