"""FastAPI dependencies as Annotated aliases: route signatures stay flat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool
from redis import Redis

from agentsys import db, defaults
from agentsys.keys import Keys
from orchestrator.settings import OrchestratorSettings

# The trivial dependencies are ``async def`` on purpose: FastAPI runs a sync dependency in
# the thread pool, one hop per dependency per request, which dominated a cheap route.

async def get_settings(request: Request) -> OrchestratorSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[OrchestratorSettings, Depends(get_settings)]


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis  # type: ignore[no-any-return]


RedisDep = Annotated[Redis, Depends(get_redis)]


async def get_keys(settings: SettingsDep) -> Keys:
    return Keys(settings.key_prefix)


KeysDep = Annotated[Keys, Depends(get_keys)]


async def db_slot(request: Request) -> AsyncIterator[None]:
    """Admit at most the pool's size of requests to a connection at once.

    FastAPI enters a sync dependency and runs a sync route in two thread-pool calls. With
    more requests in flight than connections, every pool thread could end up waiting for a
    connection that only a request waiting for a thread would give back: a deadlock until
    the pool times out. Waiting here, in the event loop, holds no thread.
    """
    async with _slots(request.app.state):
        yield


def _slots(state: Any) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    found = getattr(state, "db_slots", None)
    if found is None or found[0] is not loop:  # one per event loop (tests run several)
        found = state.db_slots = (loop, asyncio.Semaphore(defaults.DB_POOL_SIZE))
    return found[1]  # type: ignore[no-any-return]


def get_db(settings: SettingsDep, _: Annotated[None, Depends(db_slot)]) -> Iterator[psycopg.Connection]:
    with db.connection(settings.database) as conn:
        yield conn


DbDep = Annotated[psycopg.Connection, Depends(get_db, scope="function")]
"""A pooled connection in a transaction that commits when the route returns, before the
response is sent (so a client never reads before its own write is committed)."""


async def get_pool(settings: SettingsDep) -> ConnectionPool:
    return db.pool(settings.database)


PoolDep = Annotated[ConnectionPool, Depends(get_pool)]
"""The pool itself, for routes that may answer without PostgreSQL (cache hits)."""
