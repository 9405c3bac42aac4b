"""Named schedules: the set the scheduler reads (stored in Redis)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from agentsys import schedules
from agentsys.schedules import NAME_PATTERN, Schedule, ScheduleSpec
from orchestrator.deps import KeysDep, RedisDep
from orchestrator.errors import NOT_FOUND, READ, WRITE
from orchestrator.links import SCHEDULE_LINKS
from orchestrator.security import Read, Write

router = APIRouter(prefix="/schedules", tags=["schedules"], dependencies=[Read], responses=READ)

Name = Annotated[str, Path(pattern=NAME_PATTERN, examples=["live-tick"])]


def _missing(name: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no schedule named {name!r}")


@router.get("", response_model=list[Schedule], summary="Every schedule, by name")
def list_schedules(redis: RedisDep, k: KeysDep) -> list[Schedule]:
    return schedules.list_schedules(redis, k)


@router.get("/{name}", response_model=Schedule, responses=NOT_FOUND, summary="One schedule")
def get_schedule(name: Name, redis: RedisDep, k: KeysDep) -> Schedule:
    found = schedules.get_schedule(redis, k, name)
    if found is None:
        raise _missing(name)
    return found


@router.put("/{name}", response_model=Schedule, dependencies=[Write],
            responses={**WRITE, 200: {"links": SCHEDULE_LINKS},
                       201: {"model": Schedule, "description": "created", "links": SCHEDULE_LINKS}},
            summary="Create or replace a schedule (200 replaced, 201 created)")
def put_schedule(name: Name, spec: ScheduleSpec, response: Response, redis: RedisDep, k: KeysDep) -> Schedule:
    schedule, created = schedules.put_schedule(redis, k, name, spec)
    response.status_code = 201 if created else 200
    return schedule


@router.delete("/{name}", status_code=204, response_class=Response, dependencies=[Write],
               responses={**WRITE, **NOT_FOUND}, summary="Delete a schedule")
def delete_schedule(name: Name, redis: RedisDep, k: KeysDep) -> Response:
    if not schedules.delete_schedule(redis, k, name):
        raise _missing(name)
    return Response(status_code=204)
