"""CSV price files: validated whole, so a bad file writes nothing.

Columns (header names, case and surrounding spaces ignored): ``symbol``; one of ``ts``,
``date``, ``time``, ``timestamp``; one of ``price``, ``close``; other columns ignored.

- Timestamps: ISO 8601 with or without a zone (no zone means UTC), a date alone
  (``YYYY-MM-DD``, midnight UTC), or a number of epoch seconds; a number above 1e11 is
  taken as epoch milliseconds (1e11 seconds is the year 5138). Rows need not be evenly
  spaced, nor sorted: they are sorted by symbol and ts.
- Symbols: 1-32 characters of ``A-Z 0-9 . _ / -``; lower case is refused, not changed.
- Prices: finite and greater than zero.
- Identical duplicate rows count once; the same symbol and ts with two prices is an error
  naming both lines. Blank lines and a byte-order mark are ignored.

Errors list the bad lines (1-based, the header is line 1), at most ERROR_SAMPLES of them.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agentsys import defaults
from agentsys.errors import InputError
from agentsys.symbols import SYMBOL_RE

TS_NAMES = ("ts", "date", "time", "timestamp")
PRICE_NAMES = ("price", "close")
MS_THRESHOLD = 1e11


@dataclass(frozen=True, slots=True)
class PriceRows:
    symbols: npt.NDArray[np.object_]
    ts: npt.NDArray[np.int64]  # epoch microseconds, UTC
    price: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.price)


def parse_ts(text: str) -> int:
    """Epoch microseconds of one timestamp cell; ValueError with a reason."""
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise ValueError(f"bad timestamp {value!r}")
        seconds = number / 1000 if abs(number) > MS_THRESHOLD else number
        return round(seconds * 1_000_000)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(f"bad timestamp {value!r} (use ISO 8601, YYYY-MM-DD or epoch seconds)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for i, name in enumerate(header):
        if name in names:
            return i
    return None


def parse_csv(text: str) -> PriceRows:
    """Parse and validate a whole file; InputError (with line numbers) if anything is wrong."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
            break
    if header is None:
        raise InputError("the file is empty: expected a header with symbol, ts and price columns")
    i_sym, i_ts, i_price = _column(header, ("symbol",)), _column(header, TS_NAMES), _column(header, PRICE_NAMES)
    missing = [name for name, i in (("symbol", i_sym), ("ts (or date, time, timestamp)", i_ts),
                                    ("price (or close)", i_price)) if i is None]
    if missing:
        raise InputError(f"line 1: missing column(s): {', '.join(missing)}; found: {', '.join(header) or 'nothing'}")
    assert i_sym is not None and i_ts is not None and i_price is not None
    width = max(i_sym, i_ts, i_price) + 1
    symbols: list[str] = []
    stamps: list[int] = []
    prices: list[float] = []
    lines: list[int] = []
    errors: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < width:
            errors.append(f"line {line}: expected at least {width} columns, found {len(row)}")
            continue
        symbol = row[i_sym].strip()
        if not SYMBOL_RE.match(symbol):
            errors.append(f"line {line}: bad symbol {symbol!r} (1-32 of A-Z 0-9 . _ / -, upper case)")
            continue
        try:
            ts = parse_ts(row[i_ts])
        except ValueError as error:
            errors.append(f"line {line}: {error}")
            continue
        try:
            price = float(row[i_price].strip())
        except ValueError:
            errors.append(f"line {line}: bad price {row[i_price].strip()!r}")
            continue
        if not math.isfinite(price) or price <= 0:
            errors.append(f"line {line}: price must be a finite number above zero, not {row[i_price].strip()!r}")
            continue
        symbols.append(symbol)
        stamps.append(ts)
        prices.append(price)
        lines.append(line)
    if not symbols and not errors:
        raise InputError("the file has a header but no rows")
    if not errors:
        errors = _duplicates(symbols, stamps, prices, lines)
    if errors:
        shown = errors[: defaults.ERROR_SAMPLES]
        more = f"; ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise InputError(f"{len(errors)} bad row(s), nothing was written: " + "; ".join(shown) + more)
    sym = np.array(symbols, dtype=object)
    ts_arr = np.array(stamps, dtype=np.int64)
    price_arr = np.array(prices, dtype=np.float64)
    order = np.lexsort((ts_arr, sym.astype(str)))
    keep = np.ones(len(order), dtype=bool)
    s, t, p = sym[order], ts_arr[order], price_arr[order]
    keep[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    return PriceRows(s[keep], t[keep], p[keep])


def _duplicates(symbols: list[str], stamps: list[int], prices: list[float], lines: list[int]) -> list[str]:
    seen: dict[tuple[str, int], tuple[float, int]] = {}
    errors = []
    for symbol, ts, price, line in zip(symbols, stamps, prices, lines, strict=True):
        before = seen.get((symbol, ts))
        if before is None:
            seen[(symbol, ts)] = (price, line)
        elif before[0] != price:
            errors.append(f"line {line}: {symbol} at the same ts as line {before[1]} with another price"
                          f" ({price} vs {before[0]})")
    return errors


def parse_csv_file(path: str | Path) -> PriceRows:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror}") from None
    return parse_csv(text)
