"""The gateway outlives its Redis: it re-subscribes, and bang events keep coming from PostgreSQL meanwhile."""

from __future__ import annotations

import httpx
from redis import Redis

from redis_service import server as redis_server
from tests.gateway.conftest import Client, Writer, event_row, gateway_server
from tests.support.wait import until


def ready(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=5).status_code


def test_redis_restart(stack):
    own = redis_server.start(stack.tmp / "redis", appendonly=False)
    writer = Writer(stack, "AAA")
    try:
        with gateway_server(redis_url=own.url()) as url, Client(url) as client, \
                Redis.from_url(own.url()) as redis:
            client.subscribe(kinds=["bang", "task"])
            redis.publish(stack.keys.channel_tasks, '{"id": "before"}')
            assert client.until(lambda m: m["kind"] == "task")[-1]["id"] == "before"

            own.stop()
            until(lambda: ready(url) == 503, timeout=15, what="readyz to see Redis gone")
            row = writer.insert()[0]
            writer.commit(publish=False)  # nowhere to publish: the gateway reads it from PostgreSQL
            got = client.until(lambda m: m["kind"] == "bang", timeout=15)[-1]
            assert got["source"] == "db" and got["events"] == [event_row(row)]

            own = redis_server.start(stack.tmp / "redis", port=own.port, appendonly=False)
            until(lambda: ready(url) == 200, timeout=30, what="the gateway to subscribe again")
            redis.publish(stack.keys.channel_tasks, '{"id": "after"}')
            assert client.until(lambda m: m["kind"] == "task")[-1]["id"] == "after"
    finally:
        writer.close()
        own.stop()
