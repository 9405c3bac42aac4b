"""``pipeline`` ticks delivered late, twice or out of order (two workers, retries): prices are
append-only, so a tick brings each symbol up to its bar; none is refused and none leaves a gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentsys import symbols, tasks
from agentsys.symbols import SymbolSpec
from tests.support.pipeline import drain

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)  # PRICE_INTERVAL_S's default
NAMES = ["TKA", "TKB"]


def _tick(stack, conn, bar: datetime) -> str:
    return tasks.submit(stack.redis, conn, stack.keys, type="pipeline",
                        params={"symbols": NAMES, "ts": bar.isoformat()}).id


def _bars(conn, symbol: str) -> list[datetime]:
    return [r[0] for r in conn.execute("SELECT ts FROM prices WHERE symbol = %s ORDER BY ts", (symbol,))]


def test_out_of_order_late_and_gapped_ticks_all_finish_with_no_gap(stack):
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=n) for n in NAMES])
        conn.commit()
        first = _tick(stack, conn, T0)
        drain(stack)
        # the tick of bar 3 runs before the ticks of bars 1 and 2 (a second worker took it first)
        later = _tick(stack, conn, T0 + 3 * STEP)
        drain(stack)
        late = [_tick(stack, conn, T0 + i * STEP) for i in (1, 2)]
        again = _tick(stack, conn, T0 + 3 * STEP)  # and a duplicate of it
        drain(stack)
        runs = {i: tasks.get(conn, i) for i in (first, later, *late, again)}
        assert {i: r.state.value for i, r in runs.items()} == dict.fromkeys(runs, "finished"), \
            {i: r.error for i, r in runs.items()}
        for symbol in NAMES:
            # the later tick filled bars 1 and 2 on its way to bar 3: no gap, each bar once
            assert _bars(conn, symbol) == [T0 + i * STEP for i in range(4)]
            assert conn.execute("SELECT count(*) FROM indicators WHERE symbol = %s", (symbol,)).fetchone()[0] == 4
        assert runs[late[0]].result["symbols"] == 2  # covered symbols still count: their target was reached
