"""At-least-once delivery changes nothing: every job twice, in shuffled order, equals one clean run."""

from __future__ import annotations

import uuid

import numpy as np

from agentsys import symbols
from agentsys.symbols import SymbolSpec
from postgres_service import cluster
from tests.support.pipeline import drain, drain_shuffled_twice, rows, snapshot, submit_rows
from tests.support.servers import with_database


def _workload(stack) -> None:
    """Two replays on disjoint symbols over six shards: many independent jobs.

    (Chunks of one symbol's feed are not independent: a later chunk ingested first makes
    the earlier one late data, which append-only refuses by design.)
    """
    rng = np.random.default_rng(5)
    series = {f"I{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 240))) for i in range(12)}
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="csv") for s in series], shard_size=2)
    names = sorted(series)
    submit_rows(stack, rows({s: series[s] for s in names[:5]}))
    submit_rows(stack, rows({s: series[s] for s in names[5:]}, start=30))


def test_every_job_twice_in_shuffled_order_equals_a_clean_run(stack, servers, monkeypatch):
    _workload(stack)
    ran = drain_shuffled_twice(stack, seed=7)
    assert ran >= 2 * (2 + 6 + 6)  # ingest, then indicator and bang per shard, each twice
    messy = snapshot(stack.database_url)

    clean_db = f"c_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, clean_db, template=servers.template)
    try:
        stack.redis.flushdb()
        stack.database_url = with_database(servers.pg_url, clean_db)
        monkeypatch.setenv("DATABASE_URL", stack.database_url)
        from worker.settings import get_settings

        get_settings.cache_clear()
        _workload(stack)
        drain(stack)
        clean = snapshot(stack.database_url)
    finally:
        cluster.drop_database(servers.pg_url, clean_db)
    assert clean["bang_events"], "the workload must produce bangs"
    for table in clean:
        assert messy[table] == clean[table], table
    assert [t[1] for t in clean["tasks"]] == ["finished"] * 2
