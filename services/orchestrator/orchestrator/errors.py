"""Errors as JSON, never a stack trace: ``{"detail": "one line"}`` with the right status.

Library errors map to client statuses; an unreachable Redis or PostgreSQL is a 503; input
the database refuses (a NUL byte, an untranslatable character) is a 422. Anything else is
caught by :class:`ShieldMiddleware`, logged without local variables (they could hold the
request's headers) and answered with a bare 500.
"""

from __future__ import annotations

import traceback
from typing import Any

import psycopg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentsys.errors import (
    AgentSysError,
    InputError,
    TaskExists,
    TaskNotFound,
    TaskTimeout,
    UnknownTaskType,
    first_line,
)
from agentsys.logging import get_logger
from agentsys.tasks import TaskConflict

log = get_logger("orchestrator.errors")


class ErrorItem(BaseModel):
    """One refused field (FastAPI's validation error shape)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """What every error response carries: a message, or for a 422 the refused fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "no task with id 'abc'"}, {"detail": [
        {"loc": ["body", "priority"], "msg": "Input should be 'high', 'normal' or 'low'", "type": "enum"}]}]})
    detail: str | list[ErrorItem]


def error(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": description}}


COMMON = {**error(422, "invalid input: the detail names the field"), **error(503, "Redis or PostgreSQL unreachable")}
"""Responses every route can give."""
READ = {**COMMON, **error(401, "missing or invalid bearer token (when API_READ_TOKEN_REQUIRED)")}
WRITE = {**COMMON, **error(400, "the body could not be parsed (not UTF-8)"),
         **error(401, "missing or invalid bearer token"), **error(413, "request body too large")}
NOT_FOUND = error(404, "no such resource")
CONFLICT = error(409, "the resource's state does not allow this")

STATUS_OF: dict[type[Exception], int] = {
    TaskNotFound: 404,
    TaskConflict: 409,
    TaskExists: 409,
    InputError: 422,
    UnknownTaskType: 422,
    TaskTimeout: 504,
}


def _json(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _library(_: Request, exc: Exception) -> JSONResponse:
    status = next((code for cls, code in STATUS_OF.items() if isinstance(exc, cls)), 400)
    return _json(status, str(exc))


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable", error_type=type(exc).__name__, error=first_line(exc, fallback="")[:200])
    return _json(503, "a backing service (Redis or PostgreSQL) is unavailable; try again")


async def _refused_data(_: Request, exc: Exception) -> JSONResponse:
    return _json(422, f"input refused: {first_line(exc)[:200]}")


def install(app: FastAPI) -> None:
    """Register the handlers and the shield on ``app``."""
    app.add_exception_handler(AgentSysError, _library)
    unavailable: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                                                psycopg.OperationalError, PoolTimeout)
    for cls in unavailable:
        app.add_exception_handler(cls, _unavailable)
    for refused in (psycopg.DataError, UnicodeError):
        app.add_exception_handler(refused, _refused_data)


class ShieldMiddleware:
    """Turn an unhandled exception into a JSON 500 and keep it from the server's logger.

    The server would log it with structlog's local variables, which include the request
    scope and so the Authorization header; here only the traceback's text is logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error("unhandled error", method=scope.get("method"), path=scope.get("path"),
                      error_type=type(exc).__name__,
                      traceback="".join(traceback.format_exception(exc, chain=False)))
            if not started:
                await _json(500, "internal error")(scope, receive, send)
