"""Messages of ``WS /ws``: client requests parsed into filters, relayed messages cut to a filter.

The protocol itself is described in :mod:`gateway.ws`.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agentsys.symbols import SYMBOL_RE

KINDS: Final = ("bang", "update", "task", "heartbeat")
"""Kinds of relayed messages, one per Pub/Sub channel (``Keys.channels()``)."""
SYMBOL_KINDS: Final = ("bang", "update")
"""Kinds a symbol filter applies to; tasks and heartbeats are never filtered by symbol."""
MAX_SYMBOLS: Final = 10_000
"""Symbols one filter may name."""
CLOSE_TOO_SLOW: Final = 4008
"""Close code of a client whose buffer filled up (it fell behind)."""


class ProtocolError(ValueError):
    """A client message this protocol does not accept (answered with an ``error`` message)."""


@dataclass(frozen=True, slots=True)
class Filter:
    """What one client receives: kinds, and per symbol kind a set of symbols (None: all)."""

    kinds: frozenset[str] = frozenset()
    symbols: Mapping[str, frozenset[str] | None] = field(default_factory=dict)

    def symbols_for(self, kind: str) -> frozenset[str] | None:
        return self.symbols.get(kind)

    def describe(self) -> dict[str, Any]:
        return {"kinds": sorted(self.kinds),
                "symbols": {k: None if s is None else sorted(s) for k, s in self.symbols.items()}}


def dumps(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False, default=str)


def parse(text: str | bytes) -> dict[str, Any]:
    """A client message: a JSON object with a ``type``."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError('expected a JSON object with a "type"')
    return message


def _symbol_set(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_SYMBOLS:
        raise ProtocolError(f"{where} must be null or a list of at most {MAX_SYMBOLS} symbols")
    bad = [s for s in value if not isinstance(s, str) or not SYMBOL_RE.match(s)]
    if bad:
        raise ProtocolError(f"{where}: not a symbol: {str(bad[0])[:40]!r}")
    return frozenset(value)


def parse_filter(message: Mapping[str, Any]) -> Filter:
    """``{"kinds": [...] (default: all), "symbols": null | [...] | {"bang": ..., "update": ...}}``."""
    kinds = message.get("kinds", list(KINDS))
    if not isinstance(kinds, list) or any(k not in KINDS for k in kinds):
        raise ProtocolError(f"kinds must be a list of {', '.join(KINDS)}")
    symbols = message.get("symbols")
    if isinstance(symbols, dict):
        unknown = set(symbols) - set(SYMBOL_KINDS)
        if unknown:
            raise ProtocolError(f"symbols: per-kind filters exist for {', '.join(SYMBOL_KINDS)} only")
        per_kind = {k: _symbol_set(symbols.get(k), f"symbols.{k}") for k in SYMBOL_KINDS}
    else:
        one = _symbol_set(symbols, "symbols")
        per_kind = dict.fromkeys(SYMBOL_KINDS, one)
    return Filter(frozenset(kinds), per_kind)


def parse_cursor(value: Any) -> int | None:
    """A resume cursor as sent in ``cursor`` fields (a decimal string), or None."""
    if value is None:
        return None
    text = str(value)
    if not text.isdigit() or len(text) > 20:
        raise ProtocolError("cursor must be null or a cursor this gateway sent")
    return int(text)


def parse_after(value: Any) -> tuple[int, int] | None:
    """A backfill page token (``"<txid>.<id>"``), or None."""
    if value is None:
        return None
    parts = str(value).split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 20 for p in parts):
        raise ProtocolError("after must be null or the after token of a backfill reply")
    return int(parts[0]), int(parts[1])


class Columns(Mapping[str, dict[str, Any]]):
    """An update sent as columns (``{"symbol": [...], "ts": [...], ...}``, as workers publish
    a shard's tick) seen as its ``symbols`` mapping: an entry is built only when a client's
    filter asks for it, and its row index only on the first lookup."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self._columns = columns
        self._fields = [k for k in columns if k != "symbol"]
        self._rows: dict[str, int] | None = None

    @staticmethod
    def well_formed(columns: Any) -> bool:
        """A dict of equally long lists, with a ``symbol`` list of strings."""
        if not isinstance(columns, dict) or not isinstance(columns.get("symbol"), list):
            return False
        n = len(columns["symbol"])
        return all(isinstance(v, list) and len(v) == n for v in columns.values()) and all(
            isinstance(s, str) for s in columns["symbol"])

    def _index(self) -> dict[str, int]:
        if self._rows is None:
            self._rows = {s: i for i, s in enumerate(self._columns["symbol"])}
        return self._rows

    def __getitem__(self, symbol: str) -> dict[str, Any]:
        row = self._index()[symbol]
        return {k: self._columns[k][row] for k in self._fields}

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index()

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns["symbol"])

    def __len__(self) -> int:
        return len(self._columns["symbol"])


def expand_columns(message: dict[str, Any]) -> dict[str, Any]:
    """An update message with ``columns`` as one with ``symbols`` (a lazy :class:`Columns`)."""
    if "columns" not in message:
        return message
    rest = {k: v for k, v in message.items() if k != "columns"}
    return {**rest, "symbols": Columns(message["columns"])}


def select(kind: str, message: dict[str, Any], symbols: frozenset[str] | None) -> dict[str, Any] | None:
    """The part of a relayed message a symbol set lets through (None: nothing)."""
    if kind == "update" and symbols is None and isinstance(message.get("symbols"), Columns):
        return {**message, "symbols": dict(message["symbols"].items())}  # every symbol: all entries
    if symbols is None or kind not in SYMBOL_KINDS:
        return message
    if kind == "bang":
        events = [e for e in message.get("events") or () if e.get("symbol") in symbols]
        return {**message, "events": events} if events else None
    entries = message["symbols"]
    if len(symbols) < len(entries):  # a few symbols of a big shard: look them up
        found = {s: entries[s] for s in symbols if s in entries}
    else:
        found = {s: v for s, v in entries.items() if s in symbols}
    return {**message, "symbols": found} if found else None


def render(kind: str, message: dict[str, Any], filt: Filter, *, cursor: str | None,
           cache: dict[Hashable, str | None]) -> str | None:
    """The text one client gets for a relayed message; ``cache`` shares it between equal filters."""
    if kind not in filt.kinds:
        return None
    symbols = filt.symbols_for(kind)
    key = (symbols, cursor)
    if key not in cache:
        part = select(kind, message, symbols)
        if part is not None and kind == "bang":
            part = {**part, "cursor": cursor}
        cache[key] = None if part is None else dumps(part)
    return cache[key]
