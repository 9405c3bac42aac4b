"""Prices are append-only; ``replace`` recomputes forward and equals a clean run on the new data."""

from __future__ import annotations

import uuid

import numpy as np

from agentsys import tasks
from postgres_service import cluster
from tests.support.pipeline import drain, rows, snapshot, submit_rows
from tests.support.servers import with_database


def _base() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    return {f"A{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 200))) for i in range(3)}


def test_same_data_twice_changes_nothing(stack):
    first = submit_rows(stack, rows(_base()))
    drain(stack)
    before = snapshot(stack.database_url)
    again = submit_rows(stack, rows(_base()))
    drain(stack)
    after = snapshot(stack.database_url)
    with stack.db() as conn:
        assert tasks.get(conn, first.id).state == "finished"
        second = tasks.get(conn, again.id)
    assert second.state == "finished" and second.result["ticks"] == 600
    for table in ("prices", "indicators", "bang_events", "progress"):
        assert before[table] == after[table], table


def test_a_differing_old_price_is_refused_and_writes_nothing(stack):
    submit_rows(stack, rows(_base()))
    drain(stack)
    before = snapshot(stack.database_url)
    changed = _base()
    changed["A1"] = changed["A1"].copy()
    changed["A1"][120] *= 1.01
    changed["A2"] = np.append(changed["A2"], 99.0)  # a new tick in the same file: refused with the rest
    refused = submit_rows(stack, rows(changed))
    drain(stack)
    with stack.db() as conn:
        run = tasks.get(conn, refused.id)
        staged = conn.execute("SELECT count(*) FROM staged_prices").fetchone()[0]
    assert run.state == "failed"
    assert "append-only" in run.error and "A1" in run.error and "stored" in run.error
    assert snapshot(stack.database_url)["prices"] == before["prices"]
    assert snapshot(stack.database_url)["indicators"] == before["indicators"]
    assert staged == 0


def test_late_data_before_the_newest_price_is_refused(stack):
    base = _base()
    submit_rows(stack, rows({"A0": base["A0"][100:]}, start=100))
    drain(stack)
    late = submit_rows(stack, rows({"A0": base["A0"][:100]}))
    drain(stack)
    with stack.db() as conn:
        run = tasks.get(conn, late.id)
    assert run.state == "failed" and "at or before the newest stored ts" in run.error


def test_replace_recomputes_forward_and_equals_a_clean_run(stack, servers, monkeypatch):
    submit_rows(stack, rows(_base()))
    drain(stack)
    new = _base()
    new["A1"] = new["A1"].copy()
    new["A1"][120:] *= 1.05  # a different tail from tick 120 on
    new["A1"] = np.append(new["A1"], new["A1"][-1] * 1.01)
    replaced = submit_rows(stack, rows(new), replace=True)
    drain(stack)
    with stack.db() as conn:
        assert tasks.get(conn, replaced.id).state == "finished"
    got = snapshot(stack.database_url)

    clean_db = f"c_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, clean_db, template=servers.template)
    try:
        stack.redis.flushdb()
        stack.database_url = with_database(servers.pg_url, clean_db)
        monkeypatch.setenv("DATABASE_URL", stack.database_url)
        from worker.settings import get_settings

        get_settings.cache_clear()
        submit_rows(stack, rows(new))
        drain(stack)
        clean = snapshot(stack.database_url)
    finally:
        cluster.drop_database(servers.pg_url, clean_db)
    for table in ("prices", "indicators", "bang_events", "progress", "symbols"):
        assert got[table] == clean[table], table


def test_other_periods_for_symbols_with_data_need_replace(stack):
    submit_rows(stack, rows(_base()))
    drain(stack)
    refused = submit_rows(stack, rows(_base()), fast=5, mid=10, slow=20)
    drain(stack)
    with stack.db() as conn:
        run = tasks.get(conn, refused.id)
    assert run.state == "failed" and "other EMA periods" in run.error and "9/21/55" in run.error
    redone = submit_rows(stack, rows(_base()), fast=5, mid=10, slow=20, replace=True)
    drain(stack)
    with stack.db() as conn:
        assert tasks.get(conn, redone.id).state == "finished"
        row = conn.execute("SELECT ema_fast, ema_mid, ema_slow FROM symbols WHERE symbol = 'A0'").fetchone()
        first_defined = conn.execute("SELECT min(ts) FROM indicators WHERE symbol = 'A0' AND ema_slow IS NOT NULL"
                                     ).fetchone()[0]
        twentieth = conn.execute("SELECT ts FROM prices WHERE symbol = 'A0' ORDER BY ts OFFSET 19 LIMIT 1").fetchone()[0]
    assert row == (5, 10, 20)
    assert first_defined == twentieth
