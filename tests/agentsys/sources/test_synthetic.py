from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import talib

from agentsys.sources import synthetic
from worker.agents import ema

TS = synthetic.bar_times(1_767_571_200_000_000, 1_767_571_200_000_000 + 499 * 60_000_000, 60)


def test_deterministic_across_processes_and_positive():
    here = synthetic.prices(["AAPL", "MSFT"], TS[:50], seed=3)
    code = ("import json, numpy as np; from agentsys.sources import synthetic; "
            f"ts = np.array({TS[:50].tolist()}, dtype=np.int64); "
            "print(json.dumps(synthetic.prices(['AAPL', 'MSFT'], ts, seed=3).tolist()))")
    there = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert np.array_equal(here, np.array(there))
    assert (here > 0).all()
    assert not np.array_equal(here, synthetic.prices(["AAPL", "MSFT"], TS[:50], seed=4))
    # a price depends only on (symbol, ts, seed), not on which other symbols or times are asked for
    assert synthetic.prices(["MSFT"], TS[10:11], seed=3)[0, 0] == here[1, 10]


def test_bars_align_to_the_interval():
    bars = synthetic.bar_times(61_000_000, 300_000_000, 60)
    assert bars.tolist() == [120_000_000, 180_000_000, 240_000_000, 300_000_000]
    assert len(synthetic.bar_times(61_000_000, 62_000_000, 60)) == 0


def test_a_random_walk_that_makes_bangs():
    p = synthetic.prices([f"S{i}" for i in range(50)], TS)
    returns = np.diff(np.log(p), axis=1)
    assert 0.0003 < returns.std() < 0.01  # per one-minute bar
    with_bangs = 0
    for row in p:
        codes = ema.states(np.stack([talib.EMA(row, timeperiod=n) for n in (9, 21, 55)], axis=1))
        if any(codes[i] != codes[i - 1] and codes[i - 1] >= 0 and codes[i] in (1, 2) for i in range(1, len(codes))):
            with_bangs += 1
    assert with_bangs >= 45
