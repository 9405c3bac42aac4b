"""Writing an agent's progress for the symbols a job moved: one definition of how.

A live tick writes three progress rows per symbol every second. ``INSERT ... ON CONFLICT
DO UPDATE`` costs about twice a plain ``UPDATE ... FROM`` per row (measured: 5.9 against
3.1 ms for 1,000 rows), so rows the job read (it holds the agent's shard lock, so they
cannot vanish meanwhile) are updated, and only symbols with no row yet are inserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from worker.agents import bulk

Column = tuple[str, str, Any]
"""(name, SQL element type, values): a numpy array, or a :class:`bulk.Text` for text."""


def write(conn: psycopg.Connection, agent: str, names: Sequence[str], rows: npt.NDArray[np.int64],
          known: npt.NDArray[np.bool_], columns: Sequence[Column], *, keep_newer: str | None = None) -> None:
    """Set ``columns`` of the progress of ``names[rows[i]]`` (``known[i]``: it has a row).

    ``keep_newer`` names a column that never moves back (``GREATEST`` of old and new).
    """
    def setter(col: str, old: str, new: str) -> str:
        return f"{col} = GREATEST({old}.{col}, {new}.{col})" if col == keep_newer else f"{col} = {new}.{col}"

    cols = [c[0] for c in columns]
    types = ", ".join(f"%s::{c[1]}[]" for c in columns)
    for part, insert in ((known, False), (~known, True)):
        if not part.any():
            continue
        params = (bulk.Texts(bulk.Text(rows[part], names)), *(_param(kind, values, part) for _, kind, values in columns))
        if insert:
            sql = (f"INSERT INTO progress (agent, symbol, {', '.join(cols)}) SELECT %s, * FROM unnest(%s::text[], {types})"
                   f" ON CONFLICT (agent, symbol) DO UPDATE SET {', '.join(setter(c, 'progress', 'EXCLUDED') for c in cols)}")
            conn.execute(sql, (agent, *params))  # type: ignore[arg-type]
        else:
            sql = (f"UPDATE progress g SET {', '.join(setter(c, 'g', 'u') for c in cols)}"
                   f" FROM unnest(%s::text[], {types}) AS u(symbol, {', '.join(cols)})"
                   " WHERE g.agent = %s AND g.symbol = u.symbol")
            conn.execute(sql, (*params, agent))  # type: ignore[arg-type]


ARRAYS = {"timestamptz": bulk.Timestamps, "int8": bulk.Int8s, "float8": bulk.Float8s}


def _param(kind: str, values: Any, part: npt.NDArray[np.bool_]) -> bulk.Array:
    if kind == "text":
        return bulk.Texts(bulk.Text(values.codes[part], values.values))
    return ARRAYS[kind](np.asarray(values)[part])
