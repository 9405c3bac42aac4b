"""Read queries of the APIs: symbol history, bang events, task listings.

Each runs in the caller's connection and returns JSON-able values. Every query is shaped
for an index (see the migrations): history and events walk ``(symbol, ts)`` keys, task
listings one of the ``task_runs (..., created_at DESC, id DESC)`` indexes. Only the
filters given appear in the SQL (no ``%s IS NULL OR ...``), so even a prepared, generic
plan keeps its index.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from agentsys.models import TaskRun
from agentsys.timefmt import iso

EVENT_COLUMNS = "id, symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow"


def _rows(conn: psycopg.Connection, query: str, params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    row["ts"] = iso(row["ts"])
    return row


def symbol_history(
    conn: psycopg.Connection,
    symbol: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 500,
) -> dict[str, Any] | None:
    """Prices with their EMAs and state, and the bangs among them; None for an unknown symbol.

    The newest ``limit`` prices in ``[start, end]``, oldest first (what a chart draws);
    the bangs are those inside the span of the returned prices.
    """
    found = conn.execute("SELECT ema_fast, ema_mid, ema_slow FROM symbols WHERE symbol = %s", (symbol,)).fetchone()
    if found is None:
        return None
    where = ["p.symbol = %(symbol)s"]
    if start is not None:
        where.append("p.ts >= %(start)s")
    if end is not None:
        where.append("p.ts <= %(end)s")
    rows = _rows(
        conn,
        "SELECT p.ts, p.price, i.ema_fast, i.ema_mid, i.ema_slow, i.state"
        " FROM prices p LEFT JOIN indicators i ON i.symbol = p.symbol AND i.ts = p.ts"
        f" WHERE {' AND '.join(where)} ORDER BY p.ts DESC LIMIT %(limit)s",
        {"symbol": symbol, "start": start, "end": end, "limit": limit},
    )
    rows.reverse()
    bangs: list[dict[str, Any]] = []
    if rows:
        bangs = _rows(
            conn,
            f"SELECT {EVENT_COLUMNS} FROM bang_events WHERE symbol = %s AND ts BETWEEN %s AND %s ORDER BY ts",
            (symbol, rows[0]["ts"], rows[-1]["ts"]),
        )
    return {
        "symbol": symbol,
        "periods": {"fast": found[0], "mid": found[1], "slow": found[2]},
        "prices": [_iso(r) for r in rows],
        "bangs": [_iso(b) for b in bangs],
    }


def events(
    conn: psycopg.Connection,
    *,
    symbol: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Bang events, newest first; ``since`` keeps those at or after that bar time."""
    where = ["true"]
    if symbol is not None:
        where.append("symbol = %(symbol)s")
    if since is not None:
        where.append("ts >= %(since)s")
    query = (f"SELECT {EVENT_COLUMNS} FROM bang_events WHERE {' AND '.join(where)}"
             " ORDER BY ts DESC, id DESC LIMIT %(limit)s")
    return [_iso(r) for r in _rows(conn, query, {"symbol": symbol, "since": since, "limit": limit})]


def indicator_rows(conn: psycopg.Connection, symbol: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest indicator rows of a symbol, oldest first (what ``agentctl`` prints)."""
    rows = _rows(
        conn,
        "SELECT ts, price, ema_fast, ema_mid, ema_slow, state FROM indicators WHERE symbol = %s"
        " ORDER BY ts DESC LIMIT %s",
        (symbol, limit),
    )
    rows.reverse()
    return [_iso(r) for r in rows]


# ---- task listings ------------------------------------------------------------------

class BadCursor(ValueError):
    """A page cursor that this module did not make."""


def encode_cursor(run: TaskRun) -> str:
    """Opaque cursor of the row after which the next page starts."""
    return base64.urlsafe_b64encode(f"{run.created_at.isoformat()}|{run.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, task_id = text.partition("|")
        when = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("not a cursor returned by this API") from None
    if not task_id or when.tzinfo is None:
        raise BadCursor("not a cursor returned by this API")
    return when, task_id


def task_list_query(
    *,
    state: str | None = None,
    type: str | None = None,
    worker: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of one page of ``task_runs``, newest first (a test EXPLAINs it).

    Only the filters given appear in the SQL, so the planner sees plain equalities and
    picks the matching ``(column, created_at DESC, id DESC)`` index.
    """
    where: list[str] = []
    args: dict[str, Any] = {}
    for column, value in (("state", state), ("type", type), ("worker", worker)):
        if value is not None:
            where.append(f"{column} = %({column})s")
            args[column] = value
    if since is not None:
        where.append("created_at >= %(since)s")
        args["since"] = since
    if until is not None:
        where.append("created_at < %(until)s")
        args["until"] = until
    if after is not None:
        where.append("(created_at, id) < (%(after_at)s, %(after_id)s)")
        args["after_at"], args["after_id"] = after
    query = "SELECT * FROM task_runs"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += " ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
    args["limit"] = limit
    return query, args


def list_tasks(conn: psycopg.Connection, *, limit: int = 50, **filters: Any) -> tuple[list[TaskRun], str | None]:
    """One page of tasks, newest first, and the cursor of the next page (None at the end)."""
    query, args = task_list_query(limit=limit + 1, **filters)
    runs = [TaskRun.model_validate(r) for r in _rows(conn, query, args)]
    more = len(runs) > limit
    runs = runs[:limit]
    return runs, encode_cursor(runs[-1]) if more and runs else None
