"""Bang events, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from agentsys import queries
from agentsys.symbols import SYMBOL_RE
from orchestrator.deps import DbDep
from orchestrator.errors import READ
from orchestrator.routes.symbols import BangOut
from orchestrator.security import Read

router = APIRouter(prefix="/events", tags=["events"], dependencies=[Read], responses=READ)


@router.get("", response_model=list[BangOut], summary="Bang events, newest first",
            responses={200: {"content": {"application/json": {"example": [{
                "id": 7, "symbol": "AAPL", "ts": "2026-01-05T09:30:00Z", "from_state": "FLAT", "to_state": "BULL",
                "price": 185.2, "ema_fast": 184.9, "ema_mid": 184.1, "ema_slow": 183.7}]}}}})
def list_events(conn: DbDep,
                symbol: Annotated[str | None, Query(pattern=SYMBOL_RE.pattern)] = None,
                since: Annotated[datetime | None, Query(description="bar time at or after")] = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    return queries.events(conn, symbol=symbol, since=since, limit=limit)
