"""Process mode's first steps against the servers: wait for them, create the database, seed a demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from agentsys import db, defaults, tasks
from agentsys.keys import Keys
from agentsys.symbols import SymbolSpec, add_symbols

DEMO_PREFIX = "DEMO"


def _until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, RedisError, psycopg.OperationalError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer within {timeout:g}s")
        time.sleep(0.05)


def wait_redis(url: str, timeout: float = 30) -> None:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        _until(lambda: bool(client.ping()), f"Redis at {url}", timeout)
    finally:
        client.close()


def wait_workers(url: str, names: list[str], timeout: float = 60) -> None:
    """Until every named worker has registered with RQ (it is then ready to take jobs)."""
    client = Redis.from_url(url, socket_connect_timeout=1)
    wanted = {f"{Worker.redis_worker_namespace_prefix}{n}".encode() for n in names}
    try:
        _until(lambda: wanted <= set(client.smembers(Worker.redis_workers_keys)), "the workers", timeout)
    finally:
        client.close()


def _server_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))


def wait_postgres(url: str, timeout: float = 60) -> None:
    def check() -> bool:
        psycopg.connect(_server_url(url), connect_timeout=1).close()
        return True

    _until(check, "PostgreSQL", timeout)


def create_database(url: str) -> bool:
    """Create the database DATABASE_URL names when missing (our own cluster only); True when created."""
    name = urlsplit(url).path.lstrip("/") or "agentsys"
    with psycopg.connect(_server_url(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return True


def demo_shard_size(count: int, shard_size: int = defaults.SHARD_SIZE) -> int:
    """Two shards for a small demo (so two workers share it); past 2 x SHARD_SIZE symbols, the
    shards ``POST /symbols`` makes: a 50,000-symbol demo is not 2,000 shards of 25 that never catch up."""
    return min(shard_size, max(defaults.DEMO_SHARD_SIZE, -(-count // 2)))


def seed_demo(redis_url: str, database_url: str, prefix: str, count: int, *,
              shard_size: int = defaults.SHARD_SIZE) -> dict[str, int]:
    """Add ``count`` synthetic symbols when the universe is empty, then ask the price agent for
    every shard at once (its first run fetches MAX_CATCHUP_BARS of history, so EMAs and bangs
    show up immediately instead of after an hour of live bars)."""
    redis = Redis.from_url(redis_url)
    added = 0
    try:
        with db.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM symbols").fetchone()
            if count and row is not None and row[0] == 0:
                specs = [SymbolSpec(symbol=f"{DEMO_PREFIX}{i:03d}", source="synthetic") for i in range(count)]
                added = len(add_symbols(conn, specs, shard_size=demo_shard_size(count, shard_size)))
                conn.commit()
            tasks.submit(redis, conn, Keys(prefix), type="run_agent", params={"agent": "price"}, priority="high")
    finally:
        redis.close()
    return {"added": added}
