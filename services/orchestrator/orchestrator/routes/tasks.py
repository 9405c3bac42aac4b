"""Tasks: submit, inspect (with long poll), list, cancel, retry."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from agentsys import db, tasks
from agentsys.models import Priority, TaskRun, TaskState
from agentsys.queries import BadCursor, decode_cursor, list_tasks
from orchestrator import submit as submitting
from orchestrator.deps import DbDep, KeysDep, RedisDep, SettingsDep
from orchestrator.errors import CONFLICT, NOT_FOUND, READ, WRITE
from orchestrator.links import TASK_LINKS, with_links
from orchestrator.schemas import NAME_PATTERN, SUBMIT_EXAMPLES, TASK_ID_PATTERN, TaskOut, TaskPage, TaskSubmit
from orchestrator.security import Read, Write
from orchestrator.tracebacks import structure

router = APIRouter(prefix="/tasks", tags=["tasks"], dependencies=[Read], responses=READ)

MAX_WAIT = 60.0
"""Longest long poll, in seconds."""
POLL_FIRST, POLL_MAX = 0.02, 0.5
"""Seconds between two looks at a waited-for task: starts short, grows to POLL_MAX."""

TaskId = Annotated[str, Path(pattern=TASK_ID_PATTERN, max_length=128, examples=["3f0c9b1e8a2d4c6f9e7b5a3c1d0e2f4a"])]
CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {
    "schema": {"type": "string"},
    "example": "symbol,ts,price\nAAPL,2026-01-05T09:30:00Z,185.2\nAAPL,2026-01-05T09:31:00Z,185.4\n"}}}}


@router.post("", status_code=202, response_model=TaskOut, dependencies=[Write],
             responses={**WRITE, 202: {"headers": {"Location": {"description": "URL of the task",
                                                                 "schema": {"type": "string"}}},
                                       "links": TASK_LINKS}},
             summary="Submit a task (returns at once with its id)")
async def submit_task(body: Annotated[TaskSubmit, Body(openapi_examples=SUBMIT_EXAMPLES)], request: Request,
                      response: Response) -> TaskRun:
    return submitting.accepted(request, response, await submitting.submit(request.app.state.batcher, body))


@router.post("/replay", status_code=202, response_model=TaskOut, dependencies=[Write],
             responses=with_links(WRITE, 202, TASK_LINKS),
             openapi_extra=CSV_BODY, summary="Replay a CSV file (text/csv body) through the pipeline")
async def submit_replay(request: Request, response: Response, redis: RedisDep, k: KeysDep, settings: SettingsDep,
                        fast: Annotated[int | None, Query(ge=1, le=10_000)] = None,
                        mid: Annotated[int | None, Query(ge=2, le=10_000)] = None,
                        slow: Annotated[int | None, Query(ge=3, le=10_000)] = None,
                        replace: bool = False, priority: Priority = Priority.normal) -> TaskRun:
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise submitting.invalid(("body",), "the CSV must be UTF-8 text") from None
    params = {"fast": fast, "mid": mid, "slow": slow, "replace": replace}
    submitting.check_params("replay", params, ("query",))

    def run() -> TaskRun:
        with db.connection(settings.database) as conn:
            return submitting.submit_replay(redis, conn, k, csv_text=text, params=params, priority=priority)

    return submitting.accepted(request, response, await run_in_threadpool(run))


@router.get("/{task_id}", response_model=TaskOut, responses=NOT_FOUND, summary="A task, optionally once it ends")
async def get_task(task_id: TaskId, settings: SettingsDep,
                   wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="long-poll up to this many seconds "
                                                "for the task to end")] = 0,
                   traceback: Annotated[bool, Query(description="include the structured traceback")] = False,
                   ) -> TaskRun:
    def load() -> TaskRun:
        with db.connection(settings.database) as conn:
            return tasks.get(conn, task_id)

    deadline, pause = time.monotonic() + wait, POLL_FIRST
    run = await run_in_threadpool(load)
    while not run.ended and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(pause, left))  # no thread is held while waiting
        pause = min(pause * 1.5, POLL_MAX)
        run = await run_in_threadpool(load)
    return run.model_copy(update={"traceback": structure(run.traceback) if traceback else None})


@router.get("", response_model=TaskPage, summary="Tasks, newest first, filtered and cursor-paginated")
def list_all(conn: DbDep,
             state: TaskState | None = None,
             task_type: Annotated[str | None, Query(alias="type", pattern=r"^[a-z_]{1,32}$")] = None,
             worker: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
             since: Annotated[datetime | None, Query(description="created at or after")] = None,
             until: Annotated[datetime | None, Query(description="created before")] = None,
             cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> TaskPage:
    try:
        after = decode_cursor(cursor) if cursor else None
    except BadCursor as bad:
        raise submitting.invalid(("query", "cursor"), str(bad)) from None
    runs, next_cursor = list_tasks(conn, state=state.value if state else None, type=task_type, worker=worker,
                                   since=since, until=until, after=after, limit=limit)
    items = [TaskOut.model_validate({**r.model_dump(), "traceback": None}) for r in runs]
    return TaskPage(items=items, next_cursor=next_cursor)


@router.post("/{task_id}/cancel", response_model=TaskOut, dependencies=[Write],
             responses={**WRITE, **NOT_FOUND, **CONFLICT}, summary="Cancel a task that has not ended")
def cancel(task_id: TaskId, redis: RedisDep, conn: DbDep, k: KeysDep) -> TaskRun:
    return tasks.cancel(redis, conn, k, task_id)


@router.post("/{task_id}/retry", status_code=202, response_model=TaskOut, dependencies=[Write],
             responses={**WRITE, **NOT_FOUND, **CONFLICT},
             summary="Run a failed, canceled or stopped task again")
def retry(task_id: TaskId, request: Request, response: Response, redis: RedisDep, conn: DbDep,
          k: KeysDep) -> TaskRun:
    return submitting.accepted(request, response, tasks.retry(redis, conn, k, task_id))
