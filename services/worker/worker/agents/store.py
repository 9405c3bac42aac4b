"""Storing prices: append-only per symbol, or ``replace`` from the first differing ts.

A price at or before a symbol's newest stored ts is a no-op when identical and refused
when it differs (nothing is written), except under ``replace``, which deletes the
symbol's data from the first replaced ts on and resets the agents' progress to what it
was just before it, so they recompute forward.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from agentsys import agents, defaults, timefmt
from agentsys.errors import InputError
from agentsys.locks import lock_shards_of
from worker import lifecycle
from worker.agents import bulk, progress


@dataclass(frozen=True, slots=True)
class Stored:
    """What a store did, per symbol of the input."""

    symbols: list[str]
    first_ts: list[Any]
    last_ts: list[Any]
    ticks: list[int]
    inserted: int
    shards: list[int]


def store_prices(conn: psycopg.Connection, names: Sequence[str], index: npt.NDArray[np.int64],
                 ts_us: npt.NDArray[np.int64], price: npt.NDArray[np.float64], *, replace: bool = False,
                 held: Collection[int] = ()) -> Stored:
    """Store prices in the caller's transaction (symbols must exist); see the module doc.

    Row ``r`` is symbol ``names[index[r]]``. The common case, every row newer than its
    symbol's newest price, is one binary COPY straight into ``prices``. ``held``: shards
    whose price lock the caller holds already (``locks.lock_shards_of``).
    """
    shards = lock_shards_of(conn, names, agent_names=("price",), held=held)
    marks: dict[str, datetime] = dict(conn.execute(
        "SELECT symbol, last_ts FROM progress WHERE agent = 'price' AND symbol = ANY(%s)", (list(names),)).fetchall())
    mark_us = np.array([_us(marks.get(n)) for n in names], dtype=np.int64)
    present = np.bincount(index, minlength=len(names)) > 0
    first_us = np.full(len(names), np.iinfo(np.int64).max)
    np.minimum.at(first_us, index, ts_us)
    last_us = np.full(len(names), np.iinfo(np.int64).min)
    np.maximum.at(last_us, index, ts_us)
    used = np.flatnonzero(present)
    known = mark_us > np.iinfo(np.int64).min
    if bool((first_us[present] > mark_us[present]).all()):
        inserted = append_new(conn, names, index, ts_us, price, known=known, last_us=last_us)
    else:
        inserted = _store_overlapping(conn, bulk.Text(index, names), ts_us, price, replace=replace)
        _advance_marks(conn, names, used, last_us[used], known[used])
    counts = np.bincount(index, minlength=len(names))
    return Stored(
        symbols=[names[i] for i in used.tolist()], first_ts=bulk.us_to_datetimes(first_us[used]),
        last_ts=bulk.us_to_datetimes(last_us[used]), ticks=counts[used].tolist(), inserted=inserted, shards=shards,
    )


def append_new(conn: psycopg.Connection, names: Sequence[str], index: npt.NDArray[np.int64],
               ts_us: npt.NDArray[np.int64], price: npt.NDArray[np.float64], *,
               known: npt.NDArray[np.bool_], last_us: npt.NDArray[np.int64] | None = None) -> int:
    """Append prices newer than each symbol's newest (the caller holds the price locks and checked):
    one binary COPY, and the price progress. ``known``: per name, whether it has a price progress
    row; ``last_us``: each name's newest row, when the caller has it."""
    if last_us is None:
        last_us = np.full(len(names), np.iinfo(np.int64).min)
        np.maximum.at(last_us, index, ts_us)
    inserted = bulk.copy_in(conn, "prices", [("symbol", "text", bulk.Text(index, names)),
                                             ("ts", "timestamptz", ts_us), ("price", "float8!", price)])
    used = np.flatnonzero(np.bincount(index, minlength=len(names)) > 0)
    _advance_marks(conn, names, used, last_us[used], known[used])
    return inserted


def _advance_marks(conn: psycopg.Connection, names: Sequence[str], used: npt.NDArray[np.int64],
                   last_us: npt.NDArray[np.int64], known: npt.NDArray[np.bool_]) -> None:
    """The price progress of ``names[used]`` to ``last_us`` (never back); ``known``: each has a row."""
    progress.write(conn, "price", names, used, known, [("last_ts", "timestamptz", last_us)], keep_newer="last_ts")


def _us(when: Any) -> int:
    if when is None:
        return int(np.iinfo(np.int64).min)
    return timefmt.us_of(when)


def _store_overlapping(conn: psycopg.Connection, text: bulk.Text, ts_us: npt.NDArray[np.int64],
                       price: npt.NDArray[np.float64], *, replace: bool) -> int:
    """Rows at or before a symbol's newest price: identical ones are no-ops, others refused or replaced."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (symbol text, ts timestamptz, price float8)"
                 " ON COMMIT DELETE ROWS")
    conn.execute("TRUNCATE incoming")
    bulk.copy_in(conn, "incoming", [("symbol", "text", text), ("ts", "timestamptz", ts_us),
                                    ("price", "float8!", price)])
    conn.execute("ANALYZE incoming")
    clashes = conn.execute(
        """
        SELECT i.symbol, i.ts, p.price, i.price
        FROM incoming i
        JOIN progress g ON g.agent = 'price' AND g.symbol = i.symbol AND i.ts <= g.last_ts
        LEFT JOIN prices p ON p.symbol = i.symbol AND p.ts = i.ts
        WHERE p.price IS DISTINCT FROM i.price
        ORDER BY i.symbol, i.ts
        """
    ).fetchall()
    if clashes and not replace:
        raise InputError(_clash_message(clashes))
    if clashes:
        first: dict[str, Any] = {}
        for symbol, ts, _, _ in clashes:
            first.setdefault(symbol, ts)
        reset_from(conn, list(first), list(first.values()))
    return conn.execute(
        "INSERT INTO prices (symbol, ts, price) SELECT symbol, ts, price FROM incoming ORDER BY symbol, ts"
        " ON CONFLICT (symbol, ts) DO NOTHING"
    ).rowcount


def _clash_message(clashes: list[tuple[Any, ...]]) -> str:
    shown = []
    for symbol, ts, old, new in clashes[: defaults.ERROR_SAMPLES]:
        if old is None:
            shown.append(f"{symbol} {ts.isoformat()}: new price {new} is at or before the newest stored ts")
        else:
            shown.append(f"{symbol} {ts.isoformat()}: stored {old}, new {new}")
    more = len(clashes) - len(shown)
    tail = f"; ... and {more} more" if more > 0 else ""
    return ("prices are append-only: refused rows that differ from stored data or come before a symbol's newest"
            f" price (use replace to overwrite): {'; '.join(shown)}{tail}")


REWOUND = [a.name for a in agents.AGENTS if a.upstream is not None]
"""Agents whose progress a rewind moves back (every one computed from another's output)."""


def lock_downstream(conn: psycopg.Connection, symbols: list[str]) -> None:
    """Hold the indicator and bang locks of these symbols' shards while rewinding them.

    Lock order is always the registry's (price, indicator, bang), each by shard number: no deadlocks.
    """
    lock_shards_of(conn, symbols, agent_names=REWOUND)


def reset_from(conn: psycopg.Connection, symbols: list[str], from_ts: list[Any]) -> None:
    """Delete each symbol's data from its ts on and rewind the agents to just before it."""
    lock_downstream(conn, symbols)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS resets (symbol text PRIMARY KEY, from_ts timestamptz)"
                 " ON COMMIT DROP")
    conn.execute("INSERT INTO resets SELECT * FROM unnest(%s::text[], %s::timestamptz[])", (symbols, from_ts))
    for table in ("prices", "indicators", "bang_events"):
        conn.execute(f"DELETE FROM {table} t USING resets r WHERE t.symbol = r.symbol AND t.ts >= r.from_ts")  # type: ignore[arg-type]
    conn.execute(
        """
        UPDATE progress g SET last_ts = (SELECT max(ts) FROM prices p WHERE p.symbol = g.symbol)
        FROM resets r WHERE g.agent = 'price' AND g.symbol = r.symbol
        """
    )
    # The indicator agent had processed every remaining price: rebuild its carry from them.
    conn.execute(
        """
        UPDATE progress g SET
            last_ts = last.ts, n = stats.n, seed_sum = stats.seed_sum,
            ema_fast = last.ema_fast, ema_mid = last.ema_mid, ema_slow = last.ema_slow, state = last.state
        FROM resets r
        JOIN symbols s ON s.symbol = r.symbol
        CROSS JOIN LATERAL (SELECT count(*) AS n,
                                   COALESCE((SELECT sum(price) FROM (SELECT price FROM prices p
                                             WHERE p.symbol = r.symbol ORDER BY ts LIMIT s.ema_slow) f), 0)
                                       AS seed_sum
                            FROM prices p WHERE p.symbol = r.symbol) stats
        LEFT JOIN LATERAL (SELECT * FROM indicators x WHERE x.symbol = r.symbol
                           ORDER BY ts DESC LIMIT 1) last ON true
        WHERE g.agent = 'indicator' AND g.symbol = r.symbol AND g.last_ts >= r.from_ts
        """
    )
    conn.execute(
        """
        UPDATE progress g SET last_ts = last.ts, state = last.state
        FROM resets r
        LEFT JOIN LATERAL (SELECT ts, state FROM indicators x WHERE x.symbol = r.symbol
                           ORDER BY ts DESC LIMIT 1) last ON true
        WHERE g.agent = 'bang' AND g.symbol = r.symbol AND g.last_ts >= r.from_ts
        """
    )
    conn.execute("DELETE FROM progress WHERE last_ts IS NULL AND symbol = ANY(%s)", (symbols,))
    lifecycle.reopen_targets(conn)
    conn.execute("DROP TABLE resets")


def reset_indicators(conn: psycopg.Connection, symbols: list[str]) -> None:
    """Forget every computed value of these symbols (their periods changed)."""
    lock_downstream(conn, symbols)
    for table in ("indicators", "bang_events"):
        conn.execute(f"DELETE FROM {table} WHERE symbol = ANY(%s)", (symbols,))  # type: ignore[arg-type]
    conn.execute("DELETE FROM progress WHERE agent IN ('indicator', 'bang') AND symbol = ANY(%s)", (symbols,))
