"""Bulk reads and writes without a Python object per value where it matters.

Reads use binary COPY parsed straight into numpy arrays: every column must be
fixed-width and non-NULL (map NULL to NaN or -1 in the query).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

PG_EPOCH_US = 946_684_800_000_000
"""Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 (binary timestamps)."""
HEADER = 19
"""Binary COPY header: 11-byte signature, flags, extension length (we never get extensions)."""

WIDTH = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}


def copy_out(conn: psycopg.Connection, query: str, params: Sequence[Any] | dict[str, Any],
             columns: Sequence[tuple[str, str]]) -> dict[str, npt.NDArray[Any]]:
    """Run ``query`` under binary COPY; returns one array per (name, type) column.

    Timestamps come back as int64 microseconds since 1970 (UTC).
    """
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    for name, kind in columns:
        fields += [(f"_l_{name}", ">i4"), (name, WIDTH[kind])]
    dtype = np.dtype(fields)
    chunks = []
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:  # type: ignore[arg-type]
        for chunk in copy:
            chunks.append(bytes(chunk))
    data = b"".join(chunks)
    count = (len(data) - HEADER - 2) // dtype.itemsize if len(data) > HEADER else 0
    rows = np.frombuffer(data, dtype=dtype, count=count, offset=HEADER) if count else np.zeros(0, dtype)
    out: dict[str, npt.NDArray[Any]] = {}
    for name, kind in columns:
        values = rows[name].astype(WIDTH[kind][1:])
        if kind == "timestamptz":
            values = values + PG_EPOCH_US
        out[name] = values
    return out


def us_to_datetimes(ts_us: npt.NDArray[np.int64]) -> list[Any]:
    """Naive UTC datetimes for COPY into timestamptz (sessions run in UTC)."""
    return ts_us.astype("datetime64[us]").astype(object).tolist()  # type: ignore[no-any-return]


def copy_in(conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[arg-type]
        for row in rows:
            copy.write_row(row)
