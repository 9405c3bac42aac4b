"""Big replay workloads for fault tests: synthetic prices staged by binary COPY, compared by hash.

``agentsys.replay.stage`` writes row by row (fine for a CSV upload); a fault test stages
millions of rows, so :func:`stage_fast` builds one binary COPY stream with numpy. The
rows are what a parsed CSV gives (``PriceRows``: symbols, ts in epoch microseconds, price).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from redis import Redis

from agentsys import symbols, tasks
from agentsys.keys import Keys
from agentsys.sources import synthetic
from agentsys.symbols import SymbolSpec
from bench.common import last_recorded
from tests.support import wait
from tests.support.pipeline import EPOCH_US
from worker.agents import bulk

STEP_S = 60
"""Bar interval of the workload, in seconds."""
DEFAULT_TICKS_PER_S = 80_000
"""Pipeline throughput assumed when .bench/results.jsonl has no measurement, in symbol-ticks/s."""


def stage_fast(conn: psycopg.Connection, task_id: str, names: list[str], index: np.ndarray, ts_us: np.ndarray,
               price: np.ndarray) -> int:
    """COPY rows (symbol ``names[index[r]]``) into ``staged_prices`` in binary; the caller commits."""
    n = len(index)
    return bulk.copy_in(conn, "staged_prices", [
        ("task_id", "text", bulk.Text(np.zeros(n, dtype=np.int64), [task_id])),
        ("symbol", "text", bulk.Text(np.asarray(index, dtype=np.int64), names)),
        ("ts", "timestamptz", np.asarray(ts_us, dtype=np.int64)),
        ("price", "float8!", np.asarray(price, dtype=np.float64)),
    ])


@dataclass(frozen=True)
class Workload:
    """``symbols`` x ``ticks`` synthetic prices in ``tasks`` replays over shards of ``shard_size``.

    Each replay takes a contiguous block of symbols; blocks and shards do not line up,
    so shards at a block boundary get input from two replays at different times.
    """

    symbols: int
    ticks: int
    shard_size: int
    tasks: int
    seed: int = 0

    @property
    def size(self) -> int:
        """Symbol-ticks."""
        return self.symbols * self.ticks

    @property
    def shards(self) -> int:
        return -(-self.symbols // self.shard_size)

    def names(self) -> list[str]:
        return [f"R{i:06d}" for i in range(self.symbols)]

    def task_ids(self) -> list[str]:
        return [f"{self.seed:08x}{t:024x}" for t in range(self.tasks)]

    def blocks(self) -> Iterator[tuple[str, list[str]]]:
        """(task id, its symbols) per replay."""
        names = self.names()
        per = -(-len(names) // self.tasks)
        for t, task_id in enumerate(self.task_ids()):
            yield task_id, names[t * per:(t + 1) * per]

    def describe(self) -> str:
        return (f"{self.symbols:,} symbols x {self.ticks:,} ticks = {self.size:,} symbol-ticks in {self.tasks} replays,"
                f" {self.shards} shards of {self.shard_size}")

    def prepare(self, url: str) -> None:
        """Create the symbols (periods 9/21/55, source csv) and stage every replay's rows."""
        ts = EPOCH_US + np.arange(self.ticks, dtype=np.int64) * STEP_S * 1_000_000
        with psycopg.connect(url) as conn:
            symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="csv") for s in self.names()],
                                shard_size=self.shard_size)
            conn.commit()
            for task_id, names in self.blocks():
                price = synthetic.prices(names, ts, seed=self.seed).reshape(-1)
                index = np.repeat(np.arange(len(names), dtype=np.int64), self.ticks)
                stage_fast(conn, task_id, names, index, np.tile(ts, len(names)), price)
                conn.commit()

    def submit(self, redis: Redis, url: str, keys: Keys) -> list[str]:
        """Submit every staged replay (ids fixed, so two runs can be compared task by task)."""
        ids = []
        with psycopg.connect(url) as conn:
            for task_id, _ in self.blocks():
                ids.append(tasks.submit(redis, conn, keys, type="replay", params={}, task_id=task_id).id)
        return ids


def wait_finished(url: str, ids: list[str], *, timeout: float) -> float:
    """Wait until every task has ended; fail unless all finished. Returns the monotonic end time."""
    ended = {"finished", "failed", "canceled", "stopped"}
    with psycopg.connect(url, autocommit=True) as conn:
        def states() -> dict[str, int]:
            return dict(conn.execute("SELECT state, count(*) FROM task_runs WHERE id = ANY(%s) GROUP BY state",
                                     (ids,)).fetchall())

        found = wait.until(lambda: (got := states()) and sum(got.values()) == len(ids) and set(got) <= ended
                           and got, timeout=timeout, interval=0.2, what=f"{len(ids)} tasks to end")
    assert found == {"finished": len(ids)}, f"tasks ended badly: {found}"
    return time.monotonic()


FINGERPRINTS = {
    "prices": "(symbol, ts, price)",
    "indicators": "(symbol, ts, price, ema_fast, ema_mid, ema_slow, state)",
    "bang_events": "(symbol, ts, from_state, to_state, price, ema_fast, ema_mid, ema_slow)",
    "progress": "(agent, symbol, last_ts, n, seed_sum, ema_fast, ema_mid, ema_slow, state)",
    "symbols": "(symbol, shard, ema_fast, ema_mid, ema_slow, source)",
    "task_runs": "(id, type, params, state, progress, result, error)",
    "task_targets": "(task_id, symbol, target_ts, ticks, done, first_ts)",
    "staged_prices": "(task_id, symbol, ts, price)",
}
"""Per table, the columns that must match between two runs (ids, txids and times may not)."""


def fingerprint(url: str) -> dict[str, tuple[int, int]]:
    """Per table: row count and the sum of a 64-bit hash of each row's text, computed in SQL.

    Two databases with the same rows give the same figures; a row lost, doubled or
    changed changes them (up to a 2^-64 hash collision). Floats print exactly (PostgreSQL
    12+ writes the shortest text that reads back to the same double).
    """
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET timezone = 'UTC'")
        for table, row in FINGERPRINTS.items():
            got = conn.execute(
                f"SELECT count(*), COALESCE(sum(hashtextextended({row}::text, 0)), 0) FROM {table}").fetchone()
            assert got is not None
            out[table] = (int(got[0]), int(got[1]))
    return out


def measured_ticks_per_s(results: Path = Path(".bench/results.jsonl")) -> tuple[float, str]:
    """The pipeline throughput `make bench` measured with two workers, else the assumed default."""
    found = last_recorded("pipeline.ticks_per_s.workers2", results)
    if found:
        return found, str(results)
    return float(DEFAULT_TICKS_PER_S), "assumed (no .bench/results.jsonl measurement)"


def counts(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in ("prices", "indicators", "bang_events", "staged_prices")}
