"""EMAs through the real jobs equal TA-Lib's, chunk boundaries anywhere; the state machine."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from tests.support.pipeline import drain, rows, submit_rows
from worker.agents import ema

SERIES_LEN = 160


def _series(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(SERIES_LEN, dtype=np.float64)
    if kind == "constant":
        return np.full(SERIES_LEN, 42.5)
    if kind == "monotone":
        return 10 + 0.37 * t
    if kind == "random_walk":
        return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, SERIES_LEN)))
    return 50 + 5 * np.sin(t / 7) + rng.normal(0, 2.0, SERIES_LEN)  # noisy


@pytest.mark.parametrize("periods", [(9, 21, 55), (2, 5, 13), (3, 4, 100)])
def test_emas_equal_talib_fed_in_random_chunks(stack, periods):
    rng = np.random.default_rng(sum(periods))
    kinds = ["constant", "monotone", "random_walk", "noisy"]
    series = {f"{k.upper().replace('_', '')}{periods[0]}": _series(k, rng) for k in kinds}
    fast, mid, slow = periods
    # chunk boundaries inside the first N prices of every period, then random ones
    cuts = sorted({1, fast - 1, fast, mid - 1, slow - 1, slow, *rng.integers(1, SERIES_LEN, 5).tolist()})
    cuts = [c for c in cuts if 0 < c < SERIES_LEN] + [SERIES_LEN]
    start = 0
    for cut in cuts:
        chunk = {s: v[start:cut] for s, v in series.items()}
        if cut > start:
            submit_rows(stack, rows(chunk, start=start), fast=fast, mid=mid, slow=slow)
            drain(stack)
        start = cut
    with stack.db() as conn:
        for symbol, values in series.items():
            got = conn.execute("SELECT ema_fast, ema_mid, ema_slow, state FROM indicators WHERE symbol = %s"
                               " ORDER BY ts", (symbol,)).fetchall()
            assert len(got) == SERIES_LEN
            for k, period in enumerate(periods):
                want = talib.EMA(values, timeperiod=period)
                mine = np.array([np.nan if r[k] is None else r[k] for r in got])
                assert np.array_equal(np.isnan(want), np.isnan(mine)), (symbol, period)
                assert all(r[k] is None for r in got[: period - 1])  # NULL before the N-th price
                assert got[period - 1][k] == pytest.approx(values[:period].mean(), rel=1e-12)
                defined = ~np.isnan(want)
                assert np.allclose(mine[defined], want[defined], rtol=1e-9, atol=0)
            assert all(r[3] is None for r in got[: slow - 1]) and got[slow - 1][3] is not None


def test_ties_are_flat_and_states_need_all_three():
    e = np.array([[1.0, 1.0, 0.5], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [np.nan, 2.0, 1.0]])
    assert ema.states(e).tolist() == [ema.FLAT, ema.BULL, ema.BEAR, ema.FLAT, -1]


def test_first_defined_state_is_not_a_bang_and_bull_flat_bull_gives_one():
    B, F, R = ema.BULL, ema.FLAT, ema.BEAR
    codes = np.array([[-1, B, B, F, B, B, R]], dtype=np.int8)
    sym, col, frm = ema.bangs(codes, np.array([7]), np.array([-1], dtype=np.int8))
    assert col.tolist() == [4, 6]  # the first BULL (col 1) is the first defined state
    assert frm.tolist() == [F, B]


def test_bang_state_carries_across_chunks():
    B, F = ema.BULL, ema.FLAT
    sym, col, frm = ema.bangs(np.array([[B, F]], dtype=np.int8), np.array([2]), np.array([F], dtype=np.int8))
    assert col.tolist() == [0] and frm.tolist() == [F]
    sym, col, _ = ema.bangs(np.array([[B]], dtype=np.int8), np.array([1]), np.array([B], dtype=np.int8))
    assert col.tolist() == []


def test_bangs_through_jobs_match_a_reference(stack):
    rng = np.random.default_rng(11)
    series = {f"R{i}": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 400))) for i in range(5)}
    submit_rows(stack, rows(series))
    drain(stack)
    with stack.db() as conn:
        for symbol, values in series.items():
            emas = np.stack([talib.EMA(values, timeperiod=p) for p in (9, 21, 55)], axis=1)
            codes = ema.states(emas)
            want = [i for i in range(1, len(codes)) if codes[i] != codes[i - 1] and codes[i - 1] >= 0
                    and codes[i] in (ema.BULL, ema.BEAR)]
            got = conn.execute("SELECT ts FROM bang_events WHERE symbol = %s ORDER BY ts", (symbol,)).fetchall()
            assert len(got) == len(want) and len(want) > 0
