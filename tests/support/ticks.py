"""Which ticks a scheduler fired: each tick's task id is derived from (prefix, schedule, tick)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from worker.scheduler import tick_task_id


def tick_seconds(prefix: str, schedule: str, ids: Iterable[str], first: int, last: int) -> list[int]:
    """The tick (epoch second, on a 1 s grid from ``first`` to ``last``) of each task id, sorted;
    fails naming any id that is no such tick's."""
    by_id = {tick_task_id(prefix, schedule, datetime.fromtimestamp(t, UTC)): t for t in range(first, last + 1)}
    ids = list(ids)
    strangers = [i for i in ids if i not in by_id]
    assert not strangers, f"task ids of no {schedule!r} tick in [{first}, {last}]: {strangers}"
    return sorted(by_id[i] for i in ids)
