"""Three EMAs and the state, advanced over many symbols at once.

TA-Lib's convention (DESIGN section 2): the EMA of period N is undefined (NaN here,
NULL in the database) before the N-th price, equals the simple mean of the first N
prices at the N-th, and then ``ema += alpha * (p - ema)`` with ``alpha = 2 / (N + 1)``.
Inputs come in chunks, so the seed (count and running sum) is carried in the progress.

Vectorised across symbols, sequential in time: a matrix of new prices, one row per
symbol (ragged rows padded), advanced one column at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

FLAT, BULL, BEAR = 0, 1, 2
"""State codes; -1 is undefined."""
STATE_NAMES = {FLAT: "FLAT", BULL: "BULL", BEAR: "BEAR"}
STATE_CODES = {v: k for k, v in STATE_NAMES.items()}
STATE_LIST = ["FLAT", "BULL", "BEAR"]
"""Names by code, for text columns."""


@dataclass
class Carry:
    """Per-symbol progress between chunks (arrays of one value per symbol)."""

    n: Ints  # prices seen so far
    seed_sum: Floats  # sum of the prices seen while n < slow period
    ema: Floats  # shape (symbols, 3): fast, mid, slow; NaN while undefined
    periods: Ints  # shape (symbols, 3)


def advance(prices: Floats, counts: Ints, carry: Carry) -> Floats:
    """Advance every symbol over its new prices; returns EMAs of shape (symbols, T, 3).

    ``prices`` is (symbols, T), row i holding ``counts[i]`` prices left-aligned. The
    carry is updated in place.
    """
    n_sym, width = prices.shape
    out = np.full((n_sym, width, 3), np.nan)
    periods = carry.periods.astype(np.float64)
    alpha = 2.0 / (periods + 1.0)
    n, seed, ema = carry.n, carry.seed_sum, carry.ema
    slow = carry.periods[:, 2]
    for j in range(width):
        live = j < counts
        if not live.any():
            break
        p = prices[:, j]
        seeded = live & (n < slow)
        seed = np.where(seeded, seed + np.where(seeded, p, 0.0), seed)
        n_new = np.where(live, n + 1, n)
        pk = p[:, None]
        defined = (n[:, None] >= carry.periods) & live[:, None]
        step = np.where(defined, (pk - ema) * alpha + ema, ema)
        first = (n_new[:, None] == carry.periods) & (n[:, None] < carry.periods) & live[:, None]
        ema = np.where(first, seed[:, None] / periods, step)
        n = n_new
        out[:, j, :] = np.where(live[:, None], ema, np.nan)
    carry.n, carry.seed_sum, carry.ema = n, seed, ema
    return out


def states(emas: Floats) -> npt.NDArray[np.int8]:
    """State codes from EMAs (..., 3): BULL, BEAR or FLAT once all three are defined, else -1."""
    fast, mid, slow = emas[..., 0], emas[..., 1], emas[..., 2]
    code = np.full(fast.shape, FLAT, dtype=np.int8)
    code[(fast > mid) & (mid > slow)] = BULL
    code[(fast < mid) & (mid < slow)] = BEAR
    code[np.isnan(emas).any(axis=-1)] = -1
    return code


def bangs(codes: npt.NDArray[np.int8], counts: Ints, previous: npt.NDArray[np.int8]) -> tuple[Ints, Ints, npt.NDArray[np.int8]]:
    """Where the state changes into BULL or BEAR.

    ``codes`` is (symbols, T) of new states, ``previous`` the state before them (-1 when
    undefined). Returns (symbol index, column, from-state) of each bang; the first
    defined state is never a bang. ``previous`` is not changed.
    """
    width = codes.shape[1]
    live = np.arange(width)[None, :] < counts[:, None]
    before = np.concatenate([previous[:, None], codes[:, :-1]], axis=1)
    hit = live & (codes != before) & (before >= 0) & ((codes == BULL) | (codes == BEAR))
    rows, cols = np.nonzero(hit)
    return rows.astype(np.int64), cols.astype(np.int64), before[rows, cols]
