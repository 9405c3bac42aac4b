"""The symbol universe: symbols with their EMA periods and shard."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, field_validator, model_validator

from agentsys import defaults, locks
from agentsys.errors import InputError

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
    """Insert new symbols (existing ones are left as they are); returns the rows of ``specs``' symbols.

    A new symbol without an explicit shard fills the last shard (the highest number) up to
    ``shard_size``, then opens the next number: after a re-shard to another size the
    numbering stays contiguous. Runs in the caller's transaction; takes a lock so
    concurrent adds (and re-shards) number shards consistently.
    """
    conn.execute("LOCK TABLE symbols IN SHARE ROW EXCLUSIVE MODE")
    names = [s.symbol for s in specs]
    existing = {r[0] for r in conn.execute("SELECT symbol FROM symbols WHERE symbol = ANY(%s)", (names,))}
    row = conn.execute("SELECT shard, count(*) FROM symbols WHERE shard = (SELECT max(shard) FROM symbols)"
                       " GROUP BY shard").fetchone()
    last, filled = (int(row[0]), int(row[1])) if row else (0, 0)
    fresh, seen = [], set()
    for spec in specs:
        if spec.symbol in existing or spec.symbol in seen:
            continue
        seen.add(spec.symbol)
        shard = spec.shard
        if shard is None:
            if filled >= shard_size:
                last, filled = last + 1, 0
            shard, filled = last, filled + 1
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


def reshard(conn: psycopg.Connection, shard_size: int) -> dict[str, int]:
    """Renumber the universe's shards to ``shard_size`` symbols each, in the caller's transaction.

    In (current shard, symbol) order each consecutive ``shard_size`` symbols form one shard,
    numbered 0, 1, 2, ...; only rows whose shard changes are written. Safe while the
    universe ticks: it takes the table lock that adds take, then every agent's lock on every
    shard that exists before or after (the lock order), so no shard job runs until the
    caller commits, and progress is per symbol, so a symbol's next job (in whatever shard)
    goes on from where its last one stopped. Returns what it did.
    """
    if not 1 <= shard_size <= defaults.MAX_SHARD_SIZE:
        raise InputError(f"shard_size must be 1..{defaults.MAX_SHARD_SIZE}, not {shard_size}")
    conn.execute("LOCK TABLE symbols IN SHARE ROW EXCLUSIVE MODE")
    before = [int(r[0]) for r in conn.execute("SELECT DISTINCT shard FROM symbols ORDER BY shard")]
    row = conn.execute("SELECT count(*) FROM symbols").fetchone()
    count = int(row[0]) if row else 0
    after = -(-count // shard_size)
    locks.lock_shards(conn, [*before, *range(after)])
    moved = conn.execute(
        """
        UPDATE symbols s SET shard = r.shard
        FROM (SELECT symbol, (row_number() OVER (ORDER BY shard, symbol) - 1) / %s AS shard FROM symbols) r
        WHERE s.symbol = r.symbol AND s.shard <> r.shard
        """,
        (shard_size,),
    ).rowcount
    return {"shard_size": shard_size, "symbols": count, "shards_before": len(before), "shards_after": after,
            "moved": moved}


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
