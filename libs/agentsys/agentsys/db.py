"""PostgreSQL connections that are safe across RQ's fork-per-job.

A connection (or pool) made before a fork must never be used after it: both processes
would talk on one socket. So pools are per process: a child forgets its parent's pools
at fork time and builds its own on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from agentsys import defaults

_pools: dict[tuple[int, str], ConnectionPool] = {}
_pools_lock = threading.Lock()

OPTIONS = f"-c statement_timeout={defaults.STATEMENT_TIMEOUT_MS} -c timezone=UTC -c jit=off"
"""Session settings of every connection: bounded statements, timestamps in UTC, and no JIT.

Our statements are index probes and bulk COPYs; the planner's row guesses for a shard's
reads cross ``jit_above_cost``, and each call then compiled its expressions: 11-53 ms per
read, most of a live tick's read (docs/pipeline.md, the live profile)."""


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection; the caller closes it (``with connect(url) as conn``)."""
    return psycopg.connect(
        url,
        autocommit=autocommit,
        connect_timeout=defaults.CONNECT_TIMEOUT,
        options=OPTIONS,
        application_name=f"agentsys-{os.getpid()}",
    )


def pool(url: str, *, max_size: int = defaults.DB_POOL_SIZE) -> ConnectionPool:
    """This process's pool for ``url``, for long-running processes (the APIs)."""
    key = (os.getpid(), url)
    found = _pools.get(key)
    if found is not None:
        return found
    with _pools_lock:  # concurrent first requests build one pool, not one each
        found = _pools.get(key)
        if found is not None:
            return found
        found = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={
                "connect_timeout": defaults.CONNECT_TIMEOUT,
                "options": OPTIONS,
            },
            open=True,
            name=f"agentsys-{os.getpid()}",
        )
        _pools[key] = found
    return found


@contextmanager
def connection(url: str) -> Iterator[psycopg.Connection]:
    """A pooled connection in a transaction that commits on success."""
    with pool(url).connection() as conn:
        yield conn


def close_pools() -> None:
    """Close this process's pools (at shutdown)."""
    for key in [k for k in _pools if k[0] == os.getpid()]:
        _pools.pop(key).close()


def _forget() -> None:
    # Drop references only: closing would terminate the parent's sessions.
    _pools.clear()


os.register_at_fork(after_in_child=_forget)


def fetch_dicts(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())
