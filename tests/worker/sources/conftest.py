from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from redis import Redis

from agentsys.keys import Keys
from tests.support.servers import Servers, with_db
from tests.worker.sources.fake_binance import FakeBinance


@pytest.fixture
def binance_fake() -> Iterator[FakeBinance]:
    """A fake Binance on 127.0.0.1 (see ``fake_binance``), stopped after the test."""
    fake = FakeBinance()
    try:
        yield fake
    finally:
        fake.close()


@dataclass
class RedisStack:
    redis: Redis
    keys: Keys


@pytest.fixture
def redis_stack(servers: Servers) -> Iterator[RedisStack]:
    """The session's real Redis with an own db and key prefix: ``stack`` without the database it does not need."""
    client = Redis.from_url(with_db(servers.redis_url, servers.next_redis_db()))
    client.flushdb()
    try:
        yield RedisStack(client, Keys(f"t_{uuid.uuid4().hex[:12]}"))
    finally:
        client.flushdb()
        client.close()
