"""The ``replay`` task's ingest: prices staged from a CSV, on symbols it may create."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from agentsys import defaults
from agentsys import symbols as universe
from agentsys.errors import InputError
from agentsys.symbols import SymbolSpec
from worker.agents import bulk
from worker.agents.store import reset_indicators
from worker.context import JobContext
from worker.jobs.ingest.common import Input
from worker.sources.fetch import Fetched


def prices(ctx: JobContext, conn: psycopg.Connection, task_id: str, params: dict[str, Any]) -> Input:
    got = Fetched(*staged(conn, task_id))
    prepare_replay_symbols(conn, got.names, params, shard_size=ctx.settings.shard_size)
    return Input(got, replace=bool(params.get("replace")))


def staged(conn: psycopg.Connection, task_id: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    names = [r[0] for r in conn.execute(
        "SELECT DISTINCT symbol FROM staged_prices WHERE task_id = %s ORDER BY symbol", (task_id,))]
    if not names:
        raise InputError(f"task {task_id} has no staged rows (already ingested, or staged elsewhere)")
    got = bulk.copy_out_grouped(
        conn,
        """
        SELECT (s.rn - 1)::int4, array_agg(st.ts), array_agg(st.price)
        FROM staged_prices st JOIN unnest(%s::text[]) WITH ORDINALITY AS s(symbol, rn) USING (symbol)
        WHERE st.task_id = %s GROUP BY s.rn ORDER BY s.rn
        """,
        (names, task_id),
        [("ts", "timestamptz"), ("price", "float8")],
        order_by="ts",
    )
    return names, np.repeat(got.keys.astype(np.int64), got.counts), got.arrays["ts"], got.arrays["price"]


def prepare_replay_symbols(conn: psycopg.Connection, names: list[str], params: dict[str, Any], *,
                           shard_size: int) -> None:
    """Create new symbols; refuse other periods for symbols that hold data unless replace."""
    wanted = (params.get("fast"), params.get("mid"), params.get("slow"))
    given = wanted[0] is not None
    existing = {r["symbol"]: r for r in universe.get_symbols(conn, names)}
    has_data = {r[0] for r in conn.execute(
        "SELECT symbol FROM progress WHERE agent = 'price' AND symbol = ANY(%s)", (list(existing),))}
    if given:
        differ = [s for s, r in existing.items() if (r["ema_fast"], r["ema_mid"], r["ema_slow"]) != wanted]
        clash = [s for s in differ if s in has_data]
        if clash and not params.get("replace"):
            shown = ", ".join(f"{s} ({existing[s]['ema_fast']}/{existing[s]['ema_mid']}/{existing[s]['ema_slow']})"
                              for s in clash[: defaults.ERROR_SAMPLES])
            raise InputError(f"symbols already hold data computed with other EMA periods: {shown}; "
                             f"use replace to recompute them with {wanted[0]}/{wanted[1]}/{wanted[2]}")
        if differ:
            conn.execute("UPDATE symbols SET ema_fast = %s, ema_mid = %s, ema_slow = %s WHERE symbol = ANY(%s)",
                         (*wanted, differ))
            if clash:
                reset_indicators(conn, clash)
    new = [n for n in names if n not in existing]
    if new:
        periods: dict[str, Any] = dict(zip(("fast", "mid", "slow"), wanted, strict=True)) if given else {}
        universe.add_symbols(conn, [SymbolSpec(symbol=n, source="csv", **periods) for n in new], shard_size=shard_size)
