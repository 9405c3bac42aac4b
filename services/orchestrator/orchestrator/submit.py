"""From a request body to the shared library's submit: the one place the routes enqueue.

Params are validated here first so a 422 names the field as ``body.params.<field>``; the
library validates again (cheaply) because it is the contract for every caller. Concurrent
submissions are batched (:mod:`orchestrator.batching`) into one INSERT and one pipeline.
"""

from __future__ import annotations

from typing import Any

import psycopg
from anyio import to_thread
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis import Redis

from agentsys import db, replay, task_params, tasks
from agentsys.errors import UnknownTaskType
from agentsys.keys import Keys
from agentsys.models import Priority, TaskRun
from orchestrator.batching import SubmitBatcher
from orchestrator.schemas import TaskSubmit


def accepted(request: Request, response: Response, run: TaskRun) -> TaskRun:
    """Point the 202 response's Location header at the task."""
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/tasks/{run.id}"
    return run


def invalid(loc: tuple[str | int, ...], message: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the field."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": kind}])


def _no_nul(value: Any, loc: tuple[str | int, ...]) -> None:
    """PostgreSQL text and jsonb cannot hold NUL; refuse it naming the field, not as a 500."""
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid(loc, "NUL characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, loc)
            _no_nul(item, (*loc, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, (*loc, i))


def check_params(kind: str, params: dict[str, Any], loc: tuple[str | int, ...] = ("body", "params")) -> None:
    """Validate params with the library's model for the type, as a 422 naming the field."""
    _no_nul(params, loc)
    model = task_params.PARAMS.get(kind)
    if model is None:
        return
    try:
        model.model_validate(params)
    except ValidationError as error:
        raise RequestValidationError([
            {"loc": (*loc, *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]) from None


async def submit(batcher: SubmitBatcher, body: TaskSubmit) -> TaskRun:
    """Submit a task described by a ``POST /tasks`` body (batched with concurrent ones)."""
    kind, params = body.task_type, dict(body.task_params)
    if kind not in tasks.TASK_TYPES:
        raise invalid(("body", "type"), f"unknown task type; known: {', '.join(sorted(tasks.TASK_TYPES))}")
    if kind == "replay":
        csv_text = params.pop("csv", None)
        if not isinstance(csv_text, str) or not csv_text.strip():
            raise invalid(("body", "params", "csv"), "a replay needs the CSV text in params.csv")
        check_params(kind, params)

        def staged() -> TaskRun:  # parsing and staging the CSV is the work: no batching
            with db.connection(batcher.database) as conn:
                return submit_replay(batcher.redis, conn, batcher.keys, csv_text=csv_text, params=params,
                                     priority=body.task_priority)

        return await to_thread.run_sync(staged)
    check_params(kind, params)
    try:
        return await batcher.submit(tasks.Submission(kind, params, body.task_priority))
    except UnknownTaskType as error:  # deregistered between the check and the submit
        raise invalid(("body", "type"), str(error)) from None


def submit_replay(redis: Redis, conn: psycopg.Connection, k: Keys, *, csv_text: str, params: dict[str, Any],
                  priority: Priority) -> TaskRun:
    """A replay through the library's one code path (``agentctl replay`` uses it too)."""
    if "\x00" in csv_text:
        raise invalid(("body", "csv"), "NUL characters are not allowed")
    return replay.submit_replay(redis, conn, k, csv_text=csv_text, fast=params.get("fast"), mid=params.get("mid"),
                                slow=params.get("slow"), replace=bool(params.get("replace", False)),
                                priority=priority)
