"""Shard numbering: where add_symbols puts new symbols, and reshard's renumbering and locks."""

from __future__ import annotations

import threading
from collections import Counter

import psycopg
import pytest

from agentsys import symbols
from agentsys.errors import InputError
from agentsys.locks import LOCK_CLASS, lock_shards_of
from agentsys.symbols import SymbolSpec
from tests.support import wait


def _add(conn: psycopg.Connection, names: list[str], *, shard_size: int) -> None:
    symbols.add_symbols(conn, [SymbolSpec(symbol=n, source="csv") for n in names], shard_size=shard_size)


def _shards(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
    """Symbol -> (shard, xmin): xmin changes exactly when a row is written."""
    return {r[0]: (r[1], int(r[2])) for r in conn.execute("SELECT symbol, shard, xmin::text::bigint FROM symbols")}


def _sizes(conn: psycopg.Connection) -> list[int]:
    counts = Counter(shard for shard, _ in _shards(conn).values())
    return [counts[s] for s in sorted(counts)]


def test_add_symbols_fills_shards_in_order(stack):
    with stack.db() as conn:
        _add(conn, [f"N{i}" for i in range(7)], shard_size=3)
        _add(conn, ["N7"], shard_size=3)
        # contiguous full shards: today's count // shard_size
        assert {s: shard for s, (shard, _) in _shards(conn).items()} == {f"N{i}": i // 3 for i in range(8)}


def test_reshard_renumbers_in_shard_then_symbol_order_and_moves_only_changed_rows(stack):
    # added Z..A, so within a shard the symbol order is the reverse of the order of adding
    names = [chr(c) for c in range(ord("Z"), ord("A") - 1, -1)]
    with stack.db() as conn:
        _add(conn, names, shard_size=5)
        conn.commit()
        before = _shards(conn)
        summary = symbols.reshard(conn, 7)
        conn.commit()
        after = _shards(conn)
    ordered = sorted(before, key=lambda s: (before[s][0], s))
    want = {s: i // 7 for i, s in enumerate(ordered)}
    assert {s: shard for s, (shard, _) in after.items()} == want
    changed = {s for s in want if want[s] != before[s][0]}
    assert changed and len(changed) < len(names)
    assert {s for s in after if after[s][1] != before[s][1]} == changed  # untouched rows were not written
    assert summary == {"shard_size": 7, "symbols": 26, "shards_before": 6, "shards_after": 4, "moved": len(changed)}

    with stack.db() as conn:
        assert symbols.reshard(conn, 7)["moved"] == 0  # idempotent
        conn.commit()
        assert _shards(conn) == after
        with pytest.raises(InputError, match="shard_size"):
            symbols.reshard(conn, 0)


def test_add_symbols_after_a_reshard_fills_the_last_shard_then_opens_the_next(stack):
    with stack.db() as conn:
        _add(conn, [f"A{i:02d}" for i in range(12)], shard_size=3)
        symbols.reshard(conn, 5)
        assert _sizes(conn) == [5, 5, 2]
        _add(conn, [f"B{i}" for i in range(4)], shard_size=3)  # a smaller default than the re-shard's
        got = {s: shard for s, (shard, _) in _shards(conn).items()}
        assert _sizes(conn) == [5, 5, 3, 3]
        assert got["B0"] == 2 and {got[f"B{i}"] for i in (1, 2, 3)} == {3}
        _add(conn, ["C0", "C1", "C2"], shard_size=100)  # a larger one fills the last shard first
        assert _sizes(conn) == [5, 5, 3, 6]


def _waiting_on_advisory_lock(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
                       (pid,)).fetchone()
    return bool(row and row[0])


def _in_thread(target, *args) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = target(*args)
        except BaseException as error:  # reported by the test's assertion
            out["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_reshard_waits_for_a_running_jobs_lock(stack):
    with stack.db() as conn:
        _add(conn, [f"W{i}" for i in range(6)], shard_size=2)
        conn.commit()
    with stack.db() as job, stack.db() as resharder, stack.db() as watch:
        watch.autocommit = True
        job.execute("SELECT pg_advisory_xact_lock(%s, 2)", (LOCK_CLASS["bang"],))  # a bang job on shard 2

        def run() -> dict:
            done = symbols.reshard(resharder, 3)
            resharder.commit()
            return done

        thread, out = _in_thread(run)
        wait.until(lambda: _waiting_on_advisory_lock(watch, resharder.info.backend_pid), timeout=10,
                   what="the re-shard to wait for the job's lock")
        assert "value" not in out and _sizes(watch) == [2, 2, 2]
        job.commit()
        thread.join(10)
    assert "error" not in out, out
    assert out["value"]["moved"] == 3  # W2 to shard 0, W4 and W5 to shard 1
    with stack.db() as conn:
        assert _sizes(conn) == [3, 3]


def test_lock_shards_of_reads_the_shards_again_after_a_reshard_it_waited_for(stack):
    with stack.db() as conn:
        _add(conn, ["A", "B", "C", "D", "E", "F"], shard_size=3)  # 0: A B C, 1: D E F
        conn.commit()
    with stack.db() as resharder, stack.db() as store, stack.db() as watch:
        watch.autocommit = True
        symbols.reshard(resharder, 2)  # 0: A B, 1: C D, 2: E F; not committed yet
        thread, out = _in_thread(lambda: lock_shards_of(store, ["C"], agent_names=("price",)))
        wait.until(lambda: _waiting_on_advisory_lock(watch, store.info.backend_pid), timeout=10,
                   what="the store to wait for shard 0, where C was")
        resharder.commit()
        thread.join(10)
        assert "error" not in out, out
        assert out["value"] == [1]
        held = watch.execute("SELECT pg_try_advisory_lock(%s, 1)", (LOCK_CLASS["price"],)).fetchone()[0]
        assert held is False  # the store holds C's new shard
        store.rollback()
