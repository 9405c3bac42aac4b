"""A deterministic synthetic market: the same symbol, ts and seed give the same price anywhere.

A true random walk needs its whole path; this one costs O(OCTAVES) per point, wherever
ts is. Log price is a sum of octaves of value noise: octave k puts a hashed random value
on every multiple of ``3**k`` seconds and interpolates smoothly between them, with an
amplitude ``sqrt(3)`` times the previous octave's. Summed over octaves from 1 s to about
6 days, the variance of a log return grows in proportion to its horizon (within 10%
from 1 s to 1 day), as a random walk's does, so the series trends at every scale and EMA
crossovers happen at any bar interval from 1 s to an hour. Beyond the largest octave
the log price is stationary: prices wander around a base price instead of drifting off.

Each symbol has a base price (log-uniform in 5 .. 500) and a daily volatility (0.8% ..
2.5% a day, about 0.4% a minute at the top). Hashes are splitmix64 on numpy unsigned
integers, keyed by blake2b of the symbol and the seed, never Python's ``hash()``, so any
process on any machine computes the same values; prices are rounded to 1e-6, so an
``exp`` that differs in the last bit between platforms cannot change a stored price
(short of a tie at the rounding boundary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

LACUNARITY = 3
"""Ratio of the periods of two successive octaves."""
OCTAVES = 13
"""Octaves summed: periods of 1 s, 3 s, 9 s ... 3**12 s (about 6 days)."""
DAILY_VOL = (0.008, 0.025)
"""Range of the per-symbol standard deviation of one-day log returns."""
BASE_PRICE = (5.0, 500.0)
"""Range of the per-symbol base price (log-uniform)."""
DECIMALS = 6
"""Prices are rounded to this many decimals."""
_FIRST_AMPLITUDE = 0.00665
"""Amplitude of the 1 s octave giving a one-day log-return deviation of 1 (see the test)."""
_US = 1_000_000
_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ONE = np.uint64(0x3FF0000000000000)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a portable integer hash (wrapping arithmetic on purpose)."""
    x = x ^ (x >> np.uint64(30))
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _unit(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Hash bits to a float in [0, 1)."""
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _signed(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Hash bits to a float in [-0.5, 0.5), in place: 52 bits as the mantissa of a number in [1, 2)."""
    x >>= np.uint64(12)
    x |= _ONE
    values = x.view(np.float64)
    values -= 1.5
    return values


def symbol_keys(symbols: Sequence[str], seed: int) -> npt.NDArray[np.uint64]:
    """A 64-bit key per (symbol, seed), the same in every process."""
    salt = (seed & _MASK).to_bytes(8, "little")
    return np.array([int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8, salt=salt).digest(),
                                    "little") for s in symbols], dtype=np.uint64)


def prices(symbols: Sequence[str], ts: npt.NDArray[np.int64], *, seed: int = 0) -> npt.NDArray[np.float64]:
    """Prices of shape (len(symbols), len(ts)); ts in epoch microseconds (any, unsorted allowed).

    A price depends only on its symbol, ts and seed, never on the other symbols or times
    asked for in the same call.
    """
    ts = np.asarray(ts, dtype=np.int64).reshape(-1)
    keys = symbol_keys(symbols, seed)
    with np.errstate(over="ignore"):
        log_base = np.log(BASE_PRICE[0]) + _unit(_mix(keys ^ np.uint64(1))) * np.log(BASE_PRICE[1] / BASE_PRICE[0])
        vol = DAILY_VOL[0] + _unit(_mix(keys ^ np.uint64(2))) * (DAILY_VOL[1] - DAILY_VOL[0])
        log_price = noise(keys, ts)
    log_price *= vol[:, None]
    log_price += log_base[:, None]
    return np.maximum(np.round(np.exp(log_price), DECIMALS), 10.0 ** -DECIMALS)


def noise(keys: npt.NDArray[np.uint64], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The octave sum, scaled so that one-day differences have a standard deviation of about 1."""
    n = len(ts)
    out = np.zeros((len(keys), n))
    with np.errstate(over="ignore"):
        for octave in range(OCTAVES):
            period = _US * LACUNARITY**octave
            cell = ts // period
            frac = (ts - cell * period) / period
            smooth = frac * frac * (3.0 - 2.0 * frac)
            amplitude = _FIRST_AMPLITUDE * LACUNARITY ** (octave / 2)
            corners, where = np.unique(np.concatenate([cell, cell + 1]), return_inverse=True)
            stream = _mix(keys + np.uint64(octave + 3) * _GOLDEN)  # a key per symbol and octave
            value = _signed(_mix(stream[:, None] + corners.astype(np.uint64)[None, :] * _GOLDEN))
            left = value.take(where[:n], axis=1)
            left *= amplitude * (1.0 - smooth)
            out += left
            right = value.take(where[n:], axis=1)
            right *= amplitude * smooth
            out += right
    return out


def bar_times(start_us: int, end_us: int, interval_s: int) -> npt.NDArray[np.int64]:
    """Bar open times (epoch us) on multiples of the interval, from the first at or after start to end inclusive."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    step = interval_s * _US
    first = -(-start_us // step) * step
    if first > end_us:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, end_us + 1, step, dtype=np.int64)
