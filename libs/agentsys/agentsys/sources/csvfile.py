"""CSV price files, validated whole: a bad file is refused with line numbers, nothing partial.

Columns (header names; case and surrounding spaces ignored): ``symbol``; one of ``ts``,
``date``, ``time``, ``timestamp``; one of ``price``, ``close``. Other columns are
ignored; two columns for the same role (``date`` and ``time``, ``price`` and ``close``)
are refused rather than guessed.

- Timestamps (``parse_ts``): ISO 8601 with or without a zone (no zone means UTC), a date
  alone (``YYYY-MM-DD`` is midnight UTC), or epoch numbers told apart by size: below
  1e11 they are seconds (1e11 s is the year 5138), from 1e11 up to 1e14 milliseconds
  (1e11 ms is 1973). Epoch seconds must be at least 1e9 (2001-09-09), which catches a
  compact date such as ``20240101`` instead of reading it as 1970; older data can use ISO
  or milliseconds. Times need not be evenly spaced.
- Symbols must match ``SYMBOL_RE`` after stripping spaces; lower case is refused (not
  upper-cased), so a symbol is stored exactly as the file spells it.
- Prices are numbers (Python's ``float`` syntax), finite and above zero.
- Rows are sorted by (symbol, ts). Identical duplicates (same symbol, ts and price as a
  number) count once; the same symbol and ts with another price is an error naming both
  lines.
- A byte-order mark, blank lines (and lines of empty cells) are ignored; quoted fields
  follow the ``csv`` module (RFC 4180). Lines are 1-based physical lines, the header is
  line 1 (a quoted field spanning lines is reported at its first line).

Errors list at most ``defaults.ERROR_SAMPLES`` lines, then "... and N more". A clean file
takes a fast path (the csv module, then numpy, in chunks: 2M rows in about 4 s of CPU
here); only a file it doubts is checked row by row, to say exactly what is wrong where.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import numpy.typing as npt

from agentsys import defaults
from agentsys.errors import InputError
from agentsys.symbols import SYMBOL_RE
from agentsys.timefmt import iso_us, us_of

if TYPE_CHECKING:
    from _csv import Reader

SYMBOL_NAMES = ("symbol",)
TS_NAMES = ("ts", "date", "time", "timestamp")
PRICE_NAMES = ("price", "close")
MIN_EPOCH_S = 1e9
"""Smallest epoch-seconds timestamp accepted (2001-09-09): smaller numbers are likely not epochs."""
MS_THRESHOLD = 1e11
"""Epoch numbers at or above this are milliseconds."""
MAX_EPOCH_MS = 1e14
"""Epoch numbers at or above this are refused (microseconds or nanoseconds are not guessed)."""
CHUNK_ROWS = 65_536
"""Rows converted to arrays at a time (bounds the memory of Python row lists)."""


@dataclass(frozen=True, slots=True)
class PriceRows:
    """Validated rows sorted by (symbol, ts), one per (symbol, ts)."""

    symbols: npt.NDArray[np.object_]
    ts: npt.NDArray[np.int64]
    """Epoch microseconds, UTC."""
    price: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.price)


def parse_ts(text: str) -> int:
    """Epoch microseconds of one timestamp cell; ValueError with a reason."""
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if len(value) >= 10 and value[4] == "-":
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"bad timestamp {_show(value)} (use ISO 8601, YYYY-MM-DD or epoch seconds)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return us_of(when)
    try:
        number: float = int(value) if value.isdigit() else float(value)
    except ValueError:
        raise ValueError(f"bad timestamp {_show(value)} (use ISO 8601, YYYY-MM-DD or epoch seconds)") from None
    if not math.isfinite(number) or not MIN_EPOCH_S <= number < MAX_EPOCH_MS:
        raise ValueError(f"epoch timestamp {_show(value)} out of range (seconds from 1e9, or milliseconds"
                         " from 1e11; or use ISO 8601)")
    if number >= MS_THRESHOLD:
        return number * 1000 if isinstance(number, int) else round(number * 1000)
    return number * 1_000_000 if isinstance(number, int) else round(number * 1_000_000)


def parse_csv(text: str) -> PriceRows:
    """Parse and validate a whole file; InputError (with line numbers) if anything is wrong."""
    text = text.removeprefix("\ufeff")
    try:
        return _fast(text)
    except (_CloserLook, csv.Error):
        return _slow(text)


def parse_csv_file(path: str | Path) -> PriceRows:
    """``parse_csv`` of a UTF-8 file (a BOM is allowed); InputError when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return parse_csv(text)


class _CloserLook(Exception):
    """The fast path met something it does not judge: the slow path says what and where."""


def _header(reader: Reader) -> tuple[tuple[int, int, int], int]:
    """Column indexes of symbol, ts and price, and the header's line; InputError when unusable."""
    for row in reader:
        if any(cell.strip() for cell in row):
            line = reader.line_num
            header = [cell.strip().lower() for cell in row]
            break
    else:
        raise InputError("the file is empty: expected a header line with symbol, ts and price columns")
    found, problems = [], []
    for role, names in (("symbol", SYMBOL_NAMES), ("ts", TS_NAMES), ("price", PRICE_NAMES)):
        hits = [i for i, name in enumerate(header) if name in names]
        if not hits:
            problems.append(f"missing column {role}" + (f" (one of: {', '.join(names)})" if len(names) > 1 else ""))
        elif len(hits) > 1:
            problems.append(f"{len(hits)} {role} columns ({', '.join(header[i] for i in hits)}): keep one")
        else:
            found.append(hits[0])
    if problems:
        seen = ", ".join(_show(h) for h in header)
        raise InputError(f"line {line}: " + "; ".join(problems) + f"; found: {seen}")
    return (found[0], found[1], found[2]), line


def _fast(text: str) -> PriceRows:
    """A clean file, chunk by chunk with vectorised checks; _CloserLook at the first doubt."""
    reader = csv.reader(io.StringIO(text), strict=True)
    (i_sym, i_ts, i_price), _ = _header(reader)
    width = max(i_sym, i_ts, i_price) + 1
    ids: dict[str, int] = {}  # symbol cell -> provisional id
    by_name: dict[str, int] = {}  # symbol -> provisional id (cells may differ in spaces)
    parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
    while chunk := list(itertools.islice(reader, CHUNK_ROWS)):
        rows = chunk if all(chunk) else [r for r in chunk if r]  # [] is a blank line
        if not rows:
            continue
        if min(map(len, rows)) < width:
            raise _CloserLook
        raw_sym = [r[i_sym] for r in rows]
        for cell in set(raw_sym).difference(ids):
            name = cell.strip()
            if not SYMBOL_RE.match(name):
                raise _CloserLook
            ids[cell] = by_name.setdefault(name, len(by_name))
        raw_ts = [r[i_ts] for r in rows]
        try:
            price = np.fromiter(map(float, [r[i_price] for r in rows]), np.float64, len(rows))
            stamp = {cell: parse_ts(cell) for cell in set(raw_ts)}
        except ValueError:
            raise _CloserLook from None
        if not (np.isfinite(price) & (price > 0)).all():
            raise _CloserLook
        parts.append((np.fromiter(map(ids.__getitem__, raw_sym), np.int64, len(rows)),
                      np.fromiter(map(stamp.__getitem__, raw_ts), np.int64, len(rows)), price))
    if not parts:
        raise InputError("the file has a header but no rows")
    names = sorted(by_name)
    rank = np.empty(len(names), dtype=np.int64)
    rank[[by_name[n] for n in names]] = np.arange(len(names))
    codes = rank[np.concatenate([p[0] for p in parts])]
    found = _sorted_unique(codes, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                           names, None)
    if not isinstance(found, PriceRows):
        raise _CloserLook
    return found


def _slow(text: str) -> PriceRows:
    """Row by row: the rows, or InputError naming every bad line (conflicting duplicates included)."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        (i_sym, i_ts, i_price), header_line = _header(reader)
        errors, good = _check_rows(reader, (i_sym, i_ts, i_price), header_line)
    except csv.Error as error:  # in the header
        raise InputError(f"line {reader.line_num}: bad CSV: {error}") from None
    if not good and not errors:
        raise InputError("the file has a header but no rows")
    if good:
        names = sorted({g[0] for g in good})
        rank = {n: k for k, n in enumerate(names)}
        found = _sorted_unique(np.array([rank[g[0]] for g in good], dtype=np.int64),
                               np.array([g[1] for g in good], dtype=np.int64),
                               np.array([g[2] for g in good], dtype=np.float64), names,
                               np.array([g[3] for g in good], dtype=np.int64))
        if isinstance(found, PriceRows) and not errors:
            return found
        if not isinstance(found, PriceRows):
            errors += found
    _refuse(sorted(errors))


def _check_rows(reader: Reader, cols: tuple[int, int, int], header_line: int
                ) -> tuple[list[tuple[int, str]], list[tuple[str, int, float, int]]]:
    """(line, message) of each bad row, and (symbol, ts, price, line) of each good one."""
    i_sym, i_ts, i_price = cols
    width = max(cols) + 1
    errors: list[tuple[int, str]] = []
    good: list[tuple[str, int, float, int]] = []
    end = header_line
    while True:
        line = end + 1  # a quoted field can span lines: report the first
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise InputError(f"line {line}: bad CSV: {error}") from None
        end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < width:
            errors.append((line, f"line {line}: expected at least {width} columns, found {len(row)}"))
            continue
        symbol = row[i_sym].strip()
        problem = _symbol_problem(symbol)
        try:
            ts = parse_ts(row[i_ts])
        except ValueError as error:
            problem = problem or str(error)
        price = _price(row[i_price])
        if problem is None and isinstance(price, str):
            problem = price
        if problem is not None:
            errors.append((line, f"line {line}: {problem}"))
        elif not isinstance(price, str):
            good.append((symbol, ts, price, line))
    return errors, good


def _sorted_unique(codes: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64],
                   names: list[str], lines: npt.NDArray[np.int64] | None) -> PriceRows | list[tuple[int, str]]:
    """Rows sorted by (symbol, ts) with identical duplicates collapsed, or the conflicts (by line)."""
    order = np.lexsort((ts, codes))  # stable: the first of equal keys is the earliest line
    c, t, p = codes[order], ts[order], price[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (c[1:] != c[:-1]) | (t[1:] != t[:-1])
    group = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    conflict = np.flatnonzero(~first & (p != p[group]))
    if not len(conflict):
        return PriceRows(np.array(names, dtype=object)[c[first]], t[first], p[first])
    if lines is None:
        return []
    errors = []
    for j in conflict.tolist():
        line, earlier = int(lines[order[j]]), int(lines[order[group[j]]])
        errors.append((line, f"line {line}: {names[c[j]]} at {iso_us(int(t[j]), z=True)} repeats line {earlier}"
                             f" with another price ({float(p[j])!r} vs {float(p[group[j]])!r})"))
    return errors


def _symbol_problem(symbol: str) -> str | None:
    if SYMBOL_RE.match(symbol):
        return None
    if not symbol:
        return "empty symbol"
    if SYMBOL_RE.match(symbol.upper()):
        return f"symbol {_show(symbol)} must be upper case ({symbol.upper()})"
    return f"bad symbol {_show(symbol)} (1-32 characters of A-Z 0-9 . _ / -, starting with a letter or digit)"


def _price(cell: str) -> float | str:
    try:
        price = float(cell)
    except ValueError:
        return f"bad price {_show(cell.strip())}"
    if not math.isfinite(price) or price <= 0:
        return f"price must be a finite number above zero, not {_show(cell.strip())}"
    return price


def _refuse(errors: Iterable[tuple[int, str]]) -> NoReturn:
    messages = [m for _, m in errors]
    shown = messages[: defaults.ERROR_SAMPLES]
    more = f"; ... and {len(messages) - len(shown)} more" if len(messages) > len(shown) else ""
    raise InputError(f"{len(messages)} bad row(s), nothing was written: " + "; ".join(shown) + more)


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
