"""A deterministic synthetic market: the same symbol, ts and seed give the same price anywhere.

Log-price is a sum of octaves of smoothly interpolated hashed noise (value noise), each
octave twice the period and about 1.4x the amplitude of the previous one, which looks
like a random walk at the bar scale (trends at every scale, so EMA crossovers happen)
while costing O(octaves) per point, independent of how far ts is from any origin.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BASE_PERIOD_S = 60
"""Period of the finest octave, in seconds."""
OCTAVES = 12
"""Octaves summed: periods from 1 minute to about 1.4 days."""
VOLATILITY = 0.0015
"""Amplitude of the finest octave, in log-price."""

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a good, portable integer hash."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _unit(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Hash to a float in [-1, 1)."""
    return (_mix(x) >> np.uint64(11)).astype(np.float64) / float(1 << 52) - 1.0


def symbol_key(symbol: str, seed: int) -> int:
    return (zlib.crc32(symbol.encode()) << 32 | (seed & 0xFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF


def prices(symbols: Sequence[str], ts: npt.NDArray[np.int64], *, seed: int = 0) -> npt.NDArray[np.float64]:
    """Prices of shape (len(symbols), len(ts)); ts in epoch microseconds."""
    keys = np.array([symbol_key(s, seed) for s in symbols], dtype=np.uint64)[:, None]
    seconds = np.asarray(ts, dtype=np.int64)[None, :] // 1_000_000
    base = 20.0 + 480.0 * (_unit(_mix(keys ^ np.uint64(0xA5A5A5A5))) + 1.0) / 2.0  # 20 .. 500
    log_price = np.zeros((len(symbols), seconds.shape[1]))
    amplitude = VOLATILITY
    for octave in range(OCTAVES):
        period = BASE_PERIOD_S << octave
        cell = seconds // period
        frac = (seconds - cell * period) / period
        smooth = frac * frac * (3.0 - 2.0 * frac)
        salt = np.uint64((octave + 1) * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            left = _unit(keys * np.uint64(31) ^ salt ^ cell.astype(np.uint64))
            right = _unit(keys * np.uint64(31) ^ salt ^ (cell + 1).astype(np.uint64))
        log_price += amplitude * (left + (right - left) * smooth)
        amplitude *= 1.41
    return base * np.exp(log_price)


def bar_times(start_us: int, end_us: int, interval_s: int) -> npt.NDArray[np.int64]:
    """Bar open times from the first multiple of the interval at or after start, to end (inclusive)."""
    step = interval_s * 1_000_000
    first = -(-start_us // step) * step
    if first > end_us:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, end_us + 1, step, dtype=np.int64)
