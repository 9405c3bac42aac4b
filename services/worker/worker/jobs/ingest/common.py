"""What the ingest of every task type shares: its result shape and small checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agentsys.errors import InputError
from agentsys.timefmt import iso_us, us_of
from worker.agents.store import Stored
from worker.sources.fetch import Fetched

EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
"""Index, ts and price arrays of no rows."""


@dataclass(frozen=True, slots=True)
class Input:
    """What a task type's ingest has to store: prices, whether they replace, targets already met."""

    got: Fetched
    replace: bool = False
    covered: Stored | None = None
    """Symbols a later tick got to first: nothing to fetch, their target is the bar."""


def require_known(wanted: list[str], found: list[str]) -> None:
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise InputError(f"unknown symbols (add them first): {', '.join(missing[:20])}")


def with_empty(got: Fetched, bars: np.ndarray) -> Fetched:
    """``got`` with every symbol that has no price and no error yet listed as skipped too."""
    present = np.bincount(got.index, minlength=len(got.names)) > 0
    failed = {s["symbol"] for s in got.skipped}
    where = f"at {iso_us(bars[0])}" if len(bars) == 1 else f"from {iso_us(bars[0])} to {iso_us(bars[-1])}"
    empty = [{"symbol": n, "reason": f"the source had no ended bar {where}"}
             for n, has in zip(got.names, present, strict=True) if not has and n not in failed]
    if not empty:
        return got
    return Fetched(got.names, got.index, got.ts, got.price, [*got.skipped, *empty])



def us(value: Any) -> int:
    """Epoch microseconds of an ISO string or a datetime (naive means UTC)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return us_of(when)
