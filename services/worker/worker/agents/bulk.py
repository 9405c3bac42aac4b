"""Bulk reads and writes through PostgreSQL's binary COPY, straight from and to numpy.

One CopyData message per row costs more in Python than the work itself, so reads group
rows per symbol into arrays (one message per symbol) and writes build the whole binary
COPY stream with numpy: rows with the same shape (text lengths, NULL pattern) are laid
out as one structured array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

PG_EPOCH_US = 946_684_800_000_000
"""Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 (binary timestamps)."""
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
FIXED = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}


@dataclass(frozen=True, slots=True)
class Grouped:
    """Rows of ``copy_out_grouped``: a key per group and its arrays, concatenated."""

    keys: npt.NDArray[np.int32]
    counts: npt.NDArray[np.int64]
    arrays: dict[str, npt.NDArray[Any]]


def copy_out_grouped(conn: psycopg.Connection, query: str, params: Sequence[Any],
                     arrays: Sequence[tuple[str, str]], *, order_by: str | None = None) -> Grouped:
    """Run ``query`` (an int4 key, then one non-NULL array per ``arrays`` entry, no NULL elements).

    Timestamps come back as int64 microseconds since 1970 (UTC). ``order_by`` sorts the
    rows of each group by that array here, so the query need not (an ordered aggregate
    sorts every group on the server; an index scan usually delivers them in order anyway).
    """
    keys: list[int] = []
    counts: list[int] = []
    parts: dict[str, list[npt.NDArray[Any]]] = {name: [] for name, _ in arrays}
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:  # type: ignore[arg-type]
        first = True
        for chunk in copy:
            data = memoryview(chunk)
            if first:  # the header arrives with the first row
                data, first = data[len(SIGNATURE):], False
            if len(data) == 2:  # trailer; keep reading until COPY ends
                continue
            pos = 2 + 4
            keys.append(int.from_bytes(data[pos:pos + 4], "big", signed=True))
            pos += 4
            n = -1
            for name, kind in arrays:
                size = int.from_bytes(data[pos:pos + 4], "big", signed=True)
                body = data[pos + 4:pos + 4 + size]
                pos += 4 + size
                ndim = int.from_bytes(body[0:4], "big")
                n = int.from_bytes(body[12:16], "big") if ndim else 0
                width = np.dtype(FIXED[kind]).itemsize
                elem = np.dtype([("len", ">i4"), ("v", FIXED[kind])])
                start = 12 + 8 * ndim
                values = np.frombuffer(body, dtype=elem, count=n, offset=start)["v"] if n else np.zeros(0)
                assert width
                parts[name].append(values)
            counts.append(n)
    out = {}
    for name, kind in arrays:
        joined = (np.concatenate(parts[name]) if parts[name] else np.zeros(0)).astype(FIXED[kind][1:])
        out[name] = joined + PG_EPOCH_US if kind == "timestamptz" else joined
    grouped = Grouped(np.array(keys, dtype=np.int32), np.array(counts, dtype=np.int64), out)
    return _sorted(grouped, order_by) if order_by else grouped


def _sorted(g: Grouped, by: str) -> Grouped:
    group = np.repeat(np.arange(len(g.keys)), g.counts)
    values = g.arrays[by]
    if len(values) < 2 or bool(((np.diff(values) >= 0) | (np.diff(group) != 0)).all()):
        return g
    order = np.lexsort((values, group))
    return Grouped(g.keys, g.counts, {k: v[order] for k, v in g.arrays.items()})


@dataclass(frozen=True, slots=True)
class Text:
    """A text column as codes into a list of values (-1 is NULL): symbols repeat a lot."""

    codes: npt.NDArray[np.integer[Any]]
    values: Sequence[str]


Column = tuple[str, str, Any]
"""(name, kind, values): kind is text (a Text), timestamptz (int64 us since 1970),
float8 (NaN is NULL), float8! (never NULL), int8, int4."""


def copy_in(conn: psycopg.Connection, table: str, columns: Sequence[Column]) -> int:
    """COPY rows into ``table`` in binary; returns the number of rows."""
    n = len(columns[0][2].codes if columns[0][1] == "text" else columns[0][2])
    if n == 0:
        return 0
    shape = np.zeros(n, dtype=np.int64)
    prepared: list[tuple[str, str, Any, list[bytes] | None, Any]] = []
    for name, kind, values in columns:
        if kind == "text":
            encoded = [v.encode() for v in values.values]
            lengths = np.array([len(e) for e in encoded] + [-1], dtype=np.int64)  # code -1 -> NULL
            row_len = lengths[values.codes]
            shape = shape * 257 + (row_len + 1)
            prepared.append((name, kind, values.codes, encoded, row_len))
        elif kind == "float8":
            null = np.isnan(values)
            shape = shape * 2 + null
            prepared.append((name, kind, values, None, null))
        else:
            prepared.append((name, kind, values, None, None))
    _, group_of = np.unique(shape, return_inverse=True)
    order = np.argsort(group_of, kind="stable")
    bounds = np.flatnonzero(np.diff(group_of[order])) + 1
    with conn.cursor() as cur, cur.copy(  # type: ignore[arg-type]
            f"COPY {table} ({', '.join(c[0] for c in columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(SIGNATURE)
        for rows in np.split(order, bounds):
            copy.write(_layout(rows, prepared, len(columns)))
        copy.write(TRAILER)
    return n


def _layout(rows: npt.NDArray[np.int64], prepared: list[Any], nfields: int) -> bytes:
    """One structured array for rows that share a shape."""
    first = rows[0]
    fields: list[tuple[str, Any]] = [("n", ">i2")]
    fill: list[tuple[str, Any]] = []
    for i, (_, kind, values, encoded, extra) in enumerate(prepared):
        if kind == "text":
            size = int(extra[first])
            fields.append((f"l{i}", ">i4"))
            if size > 0:
                fields.append((f"d{i}", f"S{size}"))
                table = np.array(encoded, dtype=f"S{max(size, 1)}")
                fill.append((f"d{i}", table[values[rows]]))
            fill.append((f"l{i}", size))
        elif kind == "float8" and extra[first]:
            fields.append((f"l{i}", ">i4"))
            fill.append((f"l{i}", -1))
        else:
            fixed = ">f8" if kind.startswith("float8") else FIXED[kind]
            fields.append((f"l{i}", ">i4"))
            fields.append((f"d{i}", fixed))
            fill.append((f"l{i}", np.dtype(fixed).itemsize))
            data = values[rows]
            fill.append((f"d{i}", data - PG_EPOCH_US if kind == "timestamptz" else data))
    out = np.empty(len(rows), dtype=fields)
    out["n"] = nfields
    for name, value in fill:
        out[name] = value
    return out.tobytes()


def us_to_datetimes(ts_us: npt.NDArray[np.int64]) -> list[Any]:
    """Naive UTC datetimes, for the few values passed as query parameters (sessions run in UTC)."""
    return ts_us.astype("datetime64[us]").astype(object).tolist()  # type: ignore[no-any-return]


# ---- array parameters -------------------------------------------------------------------
# psycopg dumps a list parameter element by element in Python (about a microsecond each,
# and a datetime per timestamp): for the unnest() writes of a live tick that cost more than
# the statements. These wrappers send a numpy column as one binary array, built by numpy.

ARRAY_OIDS = {"float8": (1022, 701), "int8": (1016, 20), "timestamptz": (1185, 1184), "text": (1009, 25)}
"""(array oid, element oid) per kind."""


class Array:
    """A column as one binary array parameter: float8 (NaN is NULL), int8, timestamptz
    (int64 us since 1970) or text (a :class:`Text`)."""

    kind: ClassVar[str]

    def __init__(self, values: Any) -> None:
        self.values = values


class Float8s(Array):
    kind = "float8"


class Int8s(Array):
    kind = "int8"


class Timestamps(Array):
    kind = "timestamptz"


class Texts(Array):
    kind = "text"


def encode_array(kind: str, values: Any) -> bytes:
    """PostgreSQL's binary array format, one dimension."""
    array_oid, elem_oid = ARRAY_OIDS[kind]
    if kind == "text":
        pieces = [len(b).to_bytes(4, "big") + b for b in (v.encode() for v in values.values)] + [b"\xff\xff\xff\xff"]
        n, null, body = len(values.codes), bool((values.codes < 0).any()), b"".join(
            [pieces[c] for c in values.codes.tolist()])
    else:
        data = np.asarray(values)
        n = len(data)
        if kind == "timestamptz":
            data = data - PG_EPOCH_US
        nulls = np.isnan(data) if kind == "float8" else np.zeros(n, dtype=bool)
        null = bool(nulls.any())
        fixed = ">f8" if kind == "float8" else ">i8"
        if not null:
            out = np.empty(n, dtype=[("len", ">i4"), ("v", fixed)])
            out["len"], out["v"] = 8, data
            body = out.tobytes()
        else:
            size = np.where(nulls, 4, 12)
            start = np.concatenate([[0], np.cumsum(size)[:-1]])
            buf = np.zeros(int(size.sum()), dtype=np.uint8)
            lengths = np.where(nulls, -1, 8).astype(">i4").view(np.uint8).reshape(-1, 4)
            buf[start[:, None] + np.arange(4)] = lengths
            kept = ~nulls
            buf[(start[kept] + 4)[:, None] + np.arange(8)] = data[kept].astype(fixed).view(np.uint8).reshape(-1, 8)
            body = buf.tobytes()
    head = np.array([1, int(null), elem_oid, n, 1], dtype=">i4").tobytes()
    return head + body


def _dumper(kind: str) -> type[Dumper]:
    class ArrayDumper(Dumper):
        format = Format.BINARY
        oid = ARRAY_OIDS[kind][0]

        def dump(self, obj: Any) -> bytes:
            return encode_array(kind, obj.values)

    return ArrayDumper


for _cls in (Float8s, Int8s, Timestamps, Texts):
    psycopg.adapters.register_dumper(_cls, _dumper(_cls.kind))
