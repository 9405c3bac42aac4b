"""The symbol universe (with per-symbol EMA periods) and each symbol's history."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from agentsys import db, flags, queries
from agentsys import symbols as universe
from agentsys.cache import cached_history, invalidate_history, query_field
from agentsys.symbols import SYMBOL_RE, SymbolSpec
from orchestrator.deps import DbDep, KeysDep, RedisDep, SettingsDep
from orchestrator.errors import NOT_FOUND, READ, WRITE
from orchestrator.links import SYMBOL_LINKS, with_links
from orchestrator.security import Read, Write

router = APIRouter(prefix="/symbols", tags=["symbols"], dependencies=[Read], responses=READ)

SymbolName = Annotated[str, Field(pattern=SYMBOL_RE.pattern, examples=["AAPL"])]
SYMBOL_EXAMPLE: dict[str, Any] = {"symbol": "AAPL", "shard": 0, "fast": 9, "mid": 21, "slow": 55, "source": "synthetic",
                  "enabled": True, "created_at": "2026-01-05T09:00:00Z"}


class SymbolOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SYMBOL_EXAMPLE]})
    symbol: str
    shard: int
    fast: int
    mid: int
    slow: int
    source: str
    enabled: bool = Field(description="false when the symbol's runtime flag is off")
    created_at: datetime


class SymbolPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [SYMBOL_EXAMPLE], "next_cursor": None}]})
    items: list[SymbolOut]
    next_cursor: str | None = Field(default=None, description="pass as ?after= for the next page")


class SymbolsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"symbols": [{"symbol": "AAPL"}, {"symbol": "BTC/USD", "fast": 5, "mid": 13, "slow": 34, "source": "http"}]}]})
    symbols: list[SymbolSpec] = Field(min_length=1, max_length=10_000)


class Deleted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"deleted": 2}]})
    deleted: int


class PricePoint(BaseModel):
    ts: datetime
    price: float
    ema_fast: float | None
    ema_mid: float | None
    ema_slow: float | None
    state: str | None


class BangOut(BaseModel):
    id: int
    symbol: str
    ts: datetime
    from_state: str
    to_state: str
    price: float
    ema_fast: float
    ema_mid: float
    ema_slow: float


class HistoryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "symbol": "AAPL", "periods": {"fast": 9, "mid": 21, "slow": 55},
        "prices": [{"ts": "2026-01-05T09:30:00Z", "price": 185.2, "ema_fast": 184.9, "ema_mid": 184.1,
                    "ema_slow": 183.7, "state": "BULL"}],
        "bangs": [{"id": 7, "symbol": "AAPL", "ts": "2026-01-05T09:30:00Z", "from_state": "FLAT",
                   "to_state": "BULL", "price": 185.2, "ema_fast": 184.9, "ema_mid": 184.1, "ema_slow": 183.7}]}]})
    symbol: str
    periods: dict[str, int]
    prices: list[PricePoint] = Field(description="oldest first; EMAs are null until defined")
    bangs: list[BangOut]


def _out(row: dict[str, Any], disabled: set[str]) -> dict[str, Any]:
    return {"symbol": row["symbol"], "shard": row["shard"], "fast": row["ema_fast"], "mid": row["ema_mid"],
            "slow": row["ema_slow"], "source": row["source"], "enabled": row["symbol"] not in disabled,
            "created_at": row["created_at"]}


@router.get("", response_model=SymbolPage, summary="The universe, by symbol")
def list_symbols(conn: DbDep, redis: RedisDep, k: KeysDep,
                 after: Annotated[str | None, Query(max_length=32, pattern=SYMBOL_RE.pattern)] = None,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    rows = universe.list_symbols(conn, after=after, limit=limit + 1)
    disabled = flags.disabled_symbols(redis, k)
    more = len(rows) > limit
    items = [_out(r, disabled) for r in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["symbol"] if more else None}


@router.post("", status_code=201, response_model=list[SymbolOut], dependencies=[Write],
             responses=with_links(WRITE, 201, SYMBOL_LINKS),
             summary="Add symbols (existing ones are left as they are)")
def add_symbols(body: SymbolsIn, conn: DbDep, redis: RedisDep, k: KeysDep,
                settings: SettingsDep) -> list[dict[str, Any]]:
    rows = universe.add_symbols(conn, body.symbols, shard_size=settings.shard_size)
    disabled = flags.disabled_symbols(redis, k)
    return [_out(r, disabled) for r in rows]


@router.delete("", response_model=Deleted, dependencies=[Write], responses=WRITE,
               summary="Delete symbols with all their data")
def delete_symbols(conn: DbDep, redis: RedisDep, k: KeysDep,
                   symbol: Annotated[list[SymbolName], Query(min_length=1, max_length=1000,
                                                             description="repeat for several")]) -> Deleted:
    deleted = universe.delete_symbols(conn, symbol)
    conn.commit()
    invalidate_history(redis, k, symbol)
    return Deleted(deleted=deleted)


@router.get("/{symbol:path}/history", response_class=Response, responses={**NOT_FOUND, 200: {
    "model": HistoryOut, "description": "prices, EMAs, states and bangs",
    "headers": {"X-Cache": {"description": "hit: answered from Redis; miss: from PostgreSQL",
                            "schema": {"type": "string", "enum": ["hit", "miss"]}}}}},
    summary="A symbol's prices, three EMAs, state and bangs (cached in Redis)")
def history(symbol: Annotated[str, Path(pattern=SYMBOL_RE.pattern, examples=["AAPL"])],
            redis: RedisDep, k: KeysDep, settings: SettingsDep,
            start: Annotated[datetime | None, Query(alias="from", description="first bar time")] = None,
            end: Annotated[datetime | None, Query(alias="to", description="last bar time")] = None,
            limit: Annotated[int, Query(ge=1, le=10_000, description="newest bars kept")] = 500) -> Response:
    def load() -> bytes | None:
        with db.connection(settings.database) as conn:
            found = queries.symbol_history(conn, symbol, start=start, end=end, limit=limit)
        return None if found is None else json.dumps(found, separators=(",", ":")).encode()

    payload, hit = cached_history(redis, k, symbol, query_field(start, end, limit), load,
                                  ttl=settings.history_cache_ttl)
    if payload is None:
        return Response(json.dumps({"detail": f"unknown symbol {symbol!r}"}), status_code=404,
                        media_type="application/json")
    return Response(payload, media_type="application/json", headers={"X-Cache": "hit" if hit else "miss"})
