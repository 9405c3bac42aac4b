"""Session servers and a per-test stack: own Redis db, own key prefix, own database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from agentsys.keys import Keys
from postgres_service import cluster
from tests.support.servers import Servers, session_servers, with_database, with_db


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with session_servers() as found:
        yield found


@dataclass
class Stack:
    redis_url: str
    database_url: str
    prefix: str
    redis: Redis
    tmp: Path

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    @property
    def env(self) -> dict[str, str]:
        """Environment for processes the test starts."""
        return {"REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url, "KEY_PREFIX": self.prefix,
                "ENVIRONMENT": "test", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url)


def _clear_settings_caches() -> None:
    import importlib

    for module in ("worker.settings", "orchestrator.settings"):
        try:
            getattr(importlib.import_module(module), "get_settings").cache_clear()
        except (ImportError, AttributeError):
            pass


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``settings_env(NAME="value", ...)``: settings for this test, through the environment
    (the cached settings objects are dropped so that they read it again)."""
    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        _clear_settings_caches()

    yield apply
    _clear_settings_caches()


@pytest.fixture
def stack(servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    db_number = servers.next_redis_db()
    redis_url = with_db(servers.redis_url, db_number)
    client = Redis.from_url(redis_url)
    client.flushdb()
    name = f"t_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, name, template=servers.template)
    s = Stack(redis_url, with_database(servers.pg_url, name), name, client, tmp_path)
    for key, value in s.env.items():
        monkeypatch.setenv(key, value)
    _clear_settings_caches()
    try:
        yield s
    finally:
        _clear_settings_caches()
        client.flushdb()
        client.close()
        cluster.drop_database(servers.pg_url, name)
