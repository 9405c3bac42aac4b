"""The symbol universe: symbols with their EMA periods and shard."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, field_validator, model_validator

from agentsys import defaults

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,31}$")
"""Upper-case letters, digits and . _ / -, at most 32 characters (the table's CHECK)."""
SOURCES = ("synthetic", "http", "csv")


class SymbolSpec(BaseModel):
    """A symbol as a user adds it; periods default to the deployment's."""

    symbol: str = Field(examples=["AAPL"])
    fast: int = Field(default=defaults.EMA_FAST, ge=1, le=10_000)
    mid: int = Field(default=defaults.EMA_MID, ge=2, le=10_000)
    slow: int = Field(default=defaults.EMA_SLOW, ge=3, le=10_000)
    source: str = Field(default="synthetic")
    shard: int | None = Field(default=None, ge=0, le=1_000_000)

    @field_validator("symbol")
    @classmethod
    def _format(cls, value: str) -> str:
        if not SYMBOL_RE.match(value):
            raise ValueError("must be 1-32 characters of A-Z 0-9 . _ / - starting with a letter or digit")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in SOURCES:
            raise ValueError(f"must be one of {', '.join(SOURCES)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> SymbolSpec:
        if not self.fast < self.mid < self.slow:
            raise ValueError("periods must satisfy fast < mid < slow")
        return self


def add_symbols(conn: psycopg.Connection, specs: Sequence[SymbolSpec], *,
                shard_size: int = defaults.SHARD_SIZE) -> list[dict[str, Any]]:
    """Insert new symbols (existing ones are left as they are); new ones fill shards in order.

    Runs in the caller's transaction; takes a lock so concurrent adds number shards
    consistently.
    """
    conn.execute("LOCK TABLE symbols IN SHARE ROW EXCLUSIVE MODE")
    names = [s.symbol for s in specs]
    existing = {r[0] for r in conn.execute("SELECT symbol FROM symbols WHERE symbol = ANY(%s)", (names,))}
    row = conn.execute("SELECT count(*) FROM symbols").fetchone()
    count = int(row[0]) if row else 0
    fresh, seen = [], set()
    for spec in specs:
        if spec.symbol in existing or spec.symbol in seen:
            continue
        seen.add(spec.symbol)
        shard = spec.shard if spec.shard is not None else count // shard_size
        count += 1
        fresh.append((spec.symbol, shard, spec.fast, spec.mid, spec.slow, spec.source))
    if fresh:
        cols = list(zip(*fresh, strict=True))
        conn.execute(
            "INSERT INTO symbols (symbol, shard, ema_fast, ema_mid, ema_slow, source)"
            " SELECT * FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[], %s::int[], %s::text[])"
            " ON CONFLICT (symbol) DO NOTHING",
            [list(c) for c in cols],
        )
    return get_symbols(conn, names)


def get_symbols(conn: psycopg.Connection, names: Sequence[str]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM symbols WHERE symbol = ANY(%s) ORDER BY symbol", (list(names),))
        return list(cur.fetchall())


def list_symbols(conn: psycopg.Connection, *, after: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM symbols WHERE symbol > %s ORDER BY symbol LIMIT %s", (after or "", limit))
        return list(cur.fetchall())


def shards_of(conn: psycopg.Connection, names: Sequence[str] | None = None) -> list[int]:
    """Shards holding these symbols (all shards when None)."""
    if names is None:
        rows = conn.execute("SELECT DISTINCT shard FROM symbols ORDER BY shard").fetchall()
    else:
        rows = conn.execute("SELECT DISTINCT shard FROM symbols WHERE symbol = ANY(%s) ORDER BY shard",
                            (list(names),)).fetchall()
    return [int(r[0]) for r in rows]


def delete_symbols(conn: psycopg.Connection, names: Sequence[str]) -> int:
    """Delete symbols with all their data; returns how many symbols were deleted."""
    names = list(names)
    for table in ("prices", "indicators", "bang_events", "progress", "task_targets"):
        conn.execute(f"DELETE FROM {table} WHERE symbol = ANY(%s)", (names,))
    return conn.execute("DELETE FROM symbols WHERE symbol = ANY(%s)", (names,)).rowcount
