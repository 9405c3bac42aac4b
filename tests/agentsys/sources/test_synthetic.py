from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import talib

from agentsys.sources import synthetic

S = 1_000_000
T0 = 1_767_571_200 * S  # 2026-01-05T00:00:00Z
SYMBOLS = ["AAPL", "MSFT", "BTC/USDT"]


def ts_grid(n: int, step_s: int, start: int = T0) -> np.ndarray:
    return synthetic.bar_times(start, start + (n - 1) * step_s * S, step_s)


def test_the_same_in_another_process_whatever_its_hash_seed():
    ts = np.concatenate([ts_grid(40, 5), [T0 - 7 * 86_400 * S + 123_456, 0, 4_102_444_800 * S]]).astype(np.int64)
    here = synthetic.prices(SYMBOLS, ts, seed=3)
    code = ("import json, sys, numpy as np; from agentsys.sources import synthetic; "
            "args = json.load(sys.stdin); "
            "print(json.dumps(synthetic.prices(args['symbols'], np.array(args['ts'], dtype=np.int64), seed=3).tolist()))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps({"symbols": SYMBOLS, "ts": ts.tolist()}),
                         capture_output=True, text=True, check=True, env=env, timeout=60)
    assert np.array_equal(here, np.array(json.loads(out.stdout)))


def test_a_price_depends_only_on_symbol_ts_and_seed():
    ts = ts_grid(60, 60)
    full = synthetic.prices(SYMBOLS, ts, seed=3)
    assert full.shape == (3, 60) and full.dtype == np.float64
    assert synthetic.prices(["MSFT"], ts[10:11], seed=3)[0, 0] == full[1, 10]
    shuffled = np.random.default_rng(0).permutation(60)
    assert np.array_equal(synthetic.prices(["BTC/USDT", "AAPL"], ts[shuffled], seed=3), full[[2, 0]][:, shuffled])
    assert np.array_equal(synthetic.prices(["AAPL", "AAPL"], ts, seed=3), full[[0, 0]])
    assert not np.allclose(full, synthetic.prices(SYMBOLS, ts, seed=4))
    assert not np.allclose(full[0], full[1])


def test_pinned_values_do_not_change_between_versions():
    """Stored prices of the synthetic source must stay valid: changing the formula is a migration."""
    got = synthetic.prices(["AAPL", "BTC/USDT"], np.array([T0, T0 + 5 * S, T0 + 86_400 * S]), seed=0)
    assert got.tolist() == [[75.851754, 75.837396, 76.574625], [7.063727, 7.06488, 6.943699]]


def test_positive_rounded_and_shapes():
    p = synthetic.prices([f"S{i}" for i in range(300)], ts_grid(300, 3600))
    assert (p > 0).all() and np.isfinite(p).all()
    assert np.array_equal(p, np.round(p, synthetic.DECIMALS))
    assert 3 < p.min() and p.max() < 800  # base prices 5 .. 500, moved a few tens of percent at most
    assert synthetic.prices([], ts_grid(5, 1)).shape == (0, 5)
    assert synthetic.prices(["A"], np.zeros(0, dtype=np.int64)).shape == (1, 0)


def test_volatility_is_realistic_and_scales_like_a_random_walk():
    symbols = [f"S{i}" for i in range(2000)]

    def deviation(step_s: int) -> float:
        """Of log returns over step_s, across symbols and a few start times (phases of the octaves)."""
        found = []
        for start in T0 + np.arange(5) * 7_777 * S:
            found.append(np.diff(np.log(synthetic.prices(symbols, np.array([start, start + step_s * S]))), axis=1))
        return float(np.concatenate(found).std())

    daily = deviation(86_400)
    assert 0.01 < daily < 0.025  # per day, like a liquid stock or a major coin
    for step in (1, 5, 60, 3600, 6 * 3600):
        # a random walk's deviation grows as sqrt(horizon)
        assert deviation(step) / (daily * np.sqrt(step / 86_400)) == pytest.approx(1.0, abs=0.2), step


def states(p: np.ndarray) -> np.ndarray:
    """1 BULL, 2 BEAR, 0 FLAT, -1 undefined, for EMA 9/21/55 (TA-Lib's convention, as the pipeline)."""
    fast, mid, slow = (talib.EMA(p, timeperiod=n) for n in (9, 21, 55))
    out = np.where((fast > mid) & (mid > slow), 1, np.where((fast < mid) & (mid < slow), 2, 0))
    return np.where(np.isnan(slow), -1, out)


def bangs(p: np.ndarray) -> int:
    s = states(p)
    return int(((s[1:] != s[:-1]) & (s[:-1] >= 0) & (s[1:] > 0)).sum())


@pytest.mark.parametrize("step_s", [1, 5, 60])
def test_bangs_happen_within_500_bars_for_most_symbols(step_s):
    p = synthetic.prices([f"S{i}" for i in range(50)], ts_grid(500, step_s))
    counts = [bangs(row) for row in p]
    assert sum(c > 0 for c in counts) >= 45, counts
    assert np.mean(counts) >= 3  # regularly, not once in a while


def test_ten_thousand_symbols_by_two_hundred_bars_is_quick():
    symbols = [f"SYM{i}" for i in range(10_000)]
    began = time.process_time()
    p = synthetic.prices(symbols, ts_grid(200, 5))
    spent = time.process_time() - began
    assert p.shape == (10_000, 200)
    print(f"10k x 200 synthetic prices: {spent:.3f}s of CPU")


def test_bar_times_align_to_the_interval():
    assert synthetic.bar_times(61 * S, 300 * S, 60).tolist() == [120 * S, 180 * S, 240 * S, 300 * S]
    assert synthetic.bar_times(60 * S, 60 * S, 60).tolist() == [60 * S]
    assert synthetic.bar_times(61 * S, 62 * S, 60).tolist() == []
    assert synthetic.bar_times(-90 * S, 0, 60).tolist() == [-60 * S, 0]
    assert synthetic.bar_times(T0 + 1, T0 + 10 * S, 5).tolist() == [T0 + 5 * S, T0 + 10 * S]
    assert synthetic.bar_times(0, 10, 5).dtype == np.int64
    with pytest.raises(ValueError):
        synthetic.bar_times(0, 10, 0)
