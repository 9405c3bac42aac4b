"""Bang events by transaction horizon: resume cursors, backfill, and recovery of lost messages.

Why not "id greater than X": ids are drawn when a row is inserted, but transactions
commit in any order. Worker A inserts id 7, worker B inserts id 8 and commits first; a
reader that saw 8 and resumes after it never sees 7. So every ``bang_events`` row carries
the id of the transaction that wrote it (``txid xid8``), and a cursor is a *transaction
horizon* ``H``: a promise that every committed row with ``txid < H`` was already delivered.
Resuming returns the rows with ``txid >= H``; some of them the client has seen, so it
de-duplicates by ``id``.

Where the gateway's horizon comes from: a snapshot's ``xmin`` is the oldest transaction
still running when it was taken, so every row with ``txid < xmin`` was committed (or
rolled back) before it, and is visible to it. Every ``interval`` seconds the gateway
reads, in one snapshot, its ``xmin`` and the ids of the rows with ``txid >=`` the
previous horizon; rows below the new ``xmin`` that Pub/Sub has not brought (a lost or
late message) are fanned out from the database; only then does ``xmin`` become the
horizon. So: every committed row with ``txid < H`` has been fanned out, by Pub/Sub or from
the database, before any message carrying ``H`` is queued.

Why a client that resumes misses nothing: its backfill returns every row with
``txid >= cursor`` committed before the backfill started (keyset pages over a fixed
set), and every row committed after that is fanned out to it (it is subscribed before
asking). While its backfill runs, the cursors it is sent stay at or below the one it
resumes from (``Subscriber.floor``); the last page carries ``H``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection, IsolationLevel
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agentsys import defaults
from agentsys.logging import get_logger
from agentsys.timefmt import iso
from gateway.metrics import GatewayMetrics

log = get_logger("gateway.bangs")

COLUMNS = "id, symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow"
SNAPSHOT_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"


async def configure(conn: AsyncConnection) -> None:
    """Pooled connections: read-only, and one snapshot per transaction (a pool checkout)."""
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    await conn.set_read_only(True)


def _event(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("txid", None)
    row["ts"] = iso(row["ts"])
    return row


class BangTail:
    """The horizon (resume cursor) of this gateway, its backfill queries, and its recovery loop."""

    def __init__(self, pool: AsyncConnectionPool, *, deliver: Callable[[dict[str, Any]], Any], interval: float,
                 metrics: GatewayMetrics) -> None:
        self._pool = pool
        self._deliver = deliver
        self._interval = interval
        self._metrics = metrics
        self.horizon: int | None = None
        self._seen: dict[int, float] = {}  # event id -> when it was fanned out (monotonic)
        self._fresh: set[int] | None = None
        self._task: asyncio.Task[None] | None = None

    def cursor(self, floor: int | None = None) -> str | None:
        """The cursor to hand out now: the horizon, kept at or below ``floor``."""
        if self.horizon is None:
            return None if floor is None else str(floor)
        return str(self.horizon if floor is None else min(self.horizon, floor))

    def on_live(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """A bang message from Pub/Sub, less the events already fanned out (None: all were)."""
        events = [e for e in message["events"] if e["id"] not in self._seen]
        now = time.monotonic()
        for event in events:
            self._seen[event["id"]] = now
            if self._fresh is not None:
                self._fresh.add(event["id"])
        if not events:
            return None
        return message if len(events) == len(message["events"]) else {**message, "events": events}

    async def reconcile(self) -> None:
        """Fan out committed rows below the new horizon that Pub/Sub has not brought; advance it."""
        self._fresh = set()
        try:
            async with self._pool.connection(timeout=defaults.GATEWAY_DB_TIMEOUT) as conn:
                row = await (await conn.execute(SNAPSHOT_XMIN)).fetchone()
                xmin = int(row[0])  # type: ignore[index]
                window: list[tuple[int, str]] = []
                if self.horizon is not None:
                    window = await (await conn.execute(  # type: ignore[assignment]
                        "SELECT id, txid::text FROM bang_events WHERE txid >= %s::text::xid8",
                        (str(self.horizon),))).fetchall()
                missing = [i for i, txid in window if int(txid) < xmin and i not in self._seen]
                recovered = set(missing)
                rows: list[dict[str, Any]] = []
                if missing:
                    async with conn.cursor(row_factory=dict_row) as cur:
                        await cur.execute(f"SELECT {COLUMNS} FROM bang_events WHERE id = ANY(%s) ORDER BY txid, id",
                                          (missing,))
                        rows = [_event(r) for r in await cur.fetchall()]
            fresh = self._fresh
        finally:
            self._fresh = None
        # Forget what the next window cannot hold, unless it was fanned out less than
        # GATEWAY_SEEN_RETENTION_S ago: a recovered row's Pub/Sub message may still come, late,
        # after the horizon passed it, and must not be delivered twice. Keep what came while
        # reading. (Rows above the new horizon that nobody fanned out yet stay unseen: Pub/Sub
        # or the next read brings them.)
        now = time.monotonic()
        keep = now - defaults.GATEWAY_SEEN_RETENTION_S
        in_window = {i for i, _ in window}
        seen = {i: at for i, at in self._seen.items() if i in in_window or i in fresh or at >= keep}
        seen.update(dict.fromkeys(recovered, now))
        self._seen = seen
        if rows:
            self._metrics.recovered.inc(len(rows))
            log.info("bang events recovered from the database", count=len(rows))
            self._deliver({"kind": "bang", "source": "db", "shard": None, "committed_at": None, "events": rows})
        self.horizon = xmin
        self._metrics.horizon_reads.inc()

    async def backfill(self, *, cursor: int, after: tuple[int, int] | None, symbols: frozenset[str] | None,
                       limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Events with ``txid >= cursor`` in ``(txid, id)`` order, one page; and the next page's token."""
        where, args = ["txid >= %(cursor)s::text::xid8"], {"cursor": str(cursor), "limit": limit + 1}
        if after is not None:
            where.append("(txid, id) > (%(after_txid)s::text::xid8, %(after_id)s)")
            args["after_txid"], args["after_id"] = str(after[0]), after[1]
        if symbols is not None:
            where.append("symbol = ANY(%(symbols)s)")
            args["symbols"] = sorted(symbols)
        rows = await self._rows(f"SELECT {COLUMNS}, txid::text AS txid FROM bang_events WHERE {' AND '.join(where)}"
                                " ORDER BY txid, id LIMIT %(limit)s", args)
        token = f"{rows[limit - 1]['txid']}.{rows[limit - 1]['id']}" if len(rows) > limit else None
        return [_event(r) for r in rows[:limit]], token

    async def recent(self, *, symbols: frozenset[str] | None, limit: int) -> list[dict[str, Any]]:
        """The newest events (oldest first), for a client that starts without a cursor."""
        where = "WHERE symbol = ANY(%(symbols)s)" if symbols is not None else ""
        rows = await self._rows(f"SELECT {COLUMNS} FROM bang_events {where} ORDER BY id DESC LIMIT %(limit)s",
                                {"symbols": sorted(symbols or ()), "limit": limit})
        return [_event(r) for r in reversed(rows)]

    async def _rows(self, query: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._pool.connection(timeout=defaults.GATEWAY_DB_TIMEOUT) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, args)  # type: ignore[arg-type]
            return await cur.fetchall()

    async def __aenter__(self) -> BangTail:
        await self._reconcile_logged()
        self._task = asyncio.create_task(self._run(), name="gateway-bang-horizon")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._reconcile_logged()

    async def _reconcile_logged(self) -> None:
        try:
            await self.reconcile()
        except (psycopg.Error, OSError) as error:  # PostgreSQL down: keep the old horizon (still a safe cursor), retry
            log.warning("could not advance the bang horizon", error=str(error))
