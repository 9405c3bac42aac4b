"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agentsys import db, defaults, migrate
from orchestrator.deps import RedisDep, SettingsDep

router = APIRouter(tags=["health"])



@router.get("/healthz", summary="The process is up", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
def healthz() -> dict[str, str]:
    return {"status": "ok"}


READY_EXAMPLE = {"status": "ready", "checks": {"redis": "ok", "postgres": "ok", "migrations": "ok"}}
NOT_READY_EXAMPLE = {"status": "not ready", "checks": {"redis": "ok", "postgres": "ok", "migrations": "pending"}}


@router.get("/readyz", summary="Redis and PostgreSQL reachable, migrations applied",
            responses={200: {"content": {"application/json": {"example": READY_EXAMPLE}}},
                       503: {"description": "a dependency is not ready",
                             "content": {"application/json": {"example": NOT_READY_EXAMPLE}}}})
def readyz(settings: SettingsDep, redis: RedisDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        redis.ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = f"error: {type(error).__name__}"
    try:
        with db.pool(settings.database).connection(timeout=defaults.PG_PROBE_TIMEOUT) as conn:
            checks["postgres"] = "ok"
            checks["migrations"] = "ok" if migrate.is_current(conn) else "pending"
    except Exception as error:
        checks["postgres"] = f"error: {type(error).__name__}"
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 3
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)
