"""Binary COPY with numpy: what goes in comes out, NULLs and text lengths included."""

from __future__ import annotations

import numpy as np

from worker.agents import bulk


def test_round_trip_with_nulls_mixed_text_lengths_and_unsorted_rows(stack):
    rng = np.random.default_rng(0)
    names = ["A", "BB", "CCCCCCCCCC", "D.E/F-1"]
    n = 5000
    index = rng.integers(0, len(names), n)
    ts = 1_700_000_000_000_000 + rng.permutation(n).astype(np.int64) * 1_000_000
    value = rng.normal(size=n)
    value[rng.random(n) < 0.3] = np.nan
    state = rng.integers(-1, 3, n)
    with stack.db() as conn:
        conn.execute("CREATE TABLE t (symbol text, ts timestamptz, v float8, s text)")
        written = bulk.copy_in(conn, "t", [("symbol", "text", bulk.Text(index, names)), ("ts", "timestamptz", ts),
                                            ("v", "float8", value), ("s", "text", bulk.Text(state, ["X", "YY", "ZZZ"]))])
        assert written == n
        assert conn.execute("SELECT count(*) FROM t WHERE v IS NULL").fetchone()[0] == int(np.isnan(value).sum())
        assert conn.execute("SELECT count(*) FROM t WHERE s IS NULL").fetchone()[0] == int((state == -1).sum())
        got = bulk.copy_out_grouped(
            conn,
            "SELECT (s.rn - 1)::int4, array_agg(t.ts), array_agg(COALESCE(t.v, 'NaN'))"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS s(symbol, rn) JOIN t USING (symbol)"
            " GROUP BY s.rn ORDER BY s.rn",
            (names,), [("ts", "timestamptz"), ("v", "float8")], order_by="ts")
    rows = np.repeat(got.keys, got.counts)
    want = np.lexsort((ts, index))
    assert rows.tolist() == index[want].tolist()
    assert got.arrays["ts"].tolist() == ts[want].tolist()
    assert np.array_equal(got.arrays["v"], value[want], equal_nan=True)
