"""Per-(agent, shard) advisory locks, and the one lock order that keeps them deadlock-free.

A lock is ``pg_advisory_xact_lock(lock_class, shard)``, the class from the registry
(:mod:`agentsys.agents`), released at commit or rollback. The order: agents in registry
order (price, indicator, bang), each by ascending shard number.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

import psycopg

from agentsys import agents

LOCK_CLASS: Final = {a.name: a.lock_class for a in agents.AGENTS}
"""First key of the per-shard advisory lock, per agent (from the registry)."""


def lock_shard(conn: psycopg.Connection, agent: str, shard: int) -> None:
    """Serialise runs of one agent on one shard; released at commit or rollback."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS[agent], shard))


def try_lock_shard(conn: psycopg.Connection, agent: str, shard: int) -> bool:
    """Take the lock if it is free (then held to commit), never wait: a lock not waited for is
    outside the lock order and cannot deadlock."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_CLASS[agent], shard)).fetchone()
    return bool(row and row[0])


def lock_shards(conn: psycopg.Connection, shards: Iterable[int], *, agent_names: Sequence[str] = agents.NAMES) -> None:
    """Take the lock of each agent in ``agent_names`` on each shard, in the lock order."""
    ordered = sorted({int(s) for s in shards})
    for agent in agents.NAMES:
        if agent in agent_names:
            for shard in ordered:
                lock_shard(conn, agent, shard)


def lock_shards_of(conn: psycopg.Connection, symbols: Sequence[str], *,
                   agent_names: Sequence[str] = agents.NAMES, held: Collection[int] = ()) -> list[int]:
    """Lock the shards holding these symbols (each agent in ``agent_names``); returns them, ascending.

    The shards are read again under the locks: a re-shard that committed while we waited
    for them has moved symbols, and the shards they moved to are locked too (then out of
    order, which at worst makes PostgreSQL abort one of two such transactions, a retried
    error). Once a shard of these symbols is held, no re-shard can commit until we do, so
    ``held``, shards whose locks the caller took before (a shard job's own), needs no re-read.
    """
    locked = set(held)
    while True:
        rows = conn.execute("SELECT DISTINCT shard FROM symbols WHERE symbol = ANY(%s) ORDER BY shard",
                            (list(symbols),)).fetchall()
        shards = [int(r[0]) for r in rows]
        missing = [s for s in shards if s not in locked]
        if not missing:
            return shards
        lock_shards(conn, missing, agent_names=agent_names)
        locked.update(missing)
