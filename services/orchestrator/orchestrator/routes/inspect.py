"""Queues and workers: what ``celery inspect`` and Flower's workers page show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from agentsys import status
from orchestrator.deps import KeysDep, RedisDep
from orchestrator.errors import READ
from orchestrator.security import Read

router = APIRouter(tags=["queues and workers"], dependencies=[Read], responses=READ)


class QueueOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "price", "depth": 3, "started": 1, "scheduled": 0, "deferred": 0, "finished": 120, "failed": 2,
        "canceled": 0}]})
    name: str
    depth: int = Field(description="jobs waiting")
    started: int
    scheduled: int = Field(description="waiting for a retry time")
    deferred: int
    finished: int = Field(description="kept for their result TTL")
    failed: int
    canceled: int


class WorkerOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "host.4242", "hostname": "host", "pid": 4242, "queues": ["price", "price.low"], "state": "busy",
        "current_job": "5d1c0e7f", "birth": "2026-01-05T09:00:00Z", "last_heartbeat": "2026-01-05T09:30:00Z",
        "successful_jobs": 1200, "failed_jobs": 1, "working_seconds": 310.5, "rss_bytes": 91234304,
        "cpu_seconds": 290.1, "last_job_ms": 212.4, "stats_at": "2026-01-05T09:30:00Z"}]})
    name: str
    hostname: str | None
    pid: int | None
    queues: list[str]
    state: str
    current_job: str | None
    birth: datetime | None
    last_heartbeat: datetime | None
    successful_jobs: int
    failed_jobs: int
    working_seconds: float
    rss_bytes: int | None = Field(description="worker and job processes, from its last stats")
    cpu_seconds: float | None
    last_job_ms: float | None
    stats_at: datetime | None = Field(description="when the worker last wrote its stats")


@router.get("/queues", response_model=list[QueueOut], summary="Depth and registry counts per queue")
def queues(redis: RedisDep) -> list[dict[str, Any]]:
    return status.queue_stats(redis)


@router.get("/workers", response_model=list[WorkerOut], summary="Registered workers and their resources")
def workers(redis: RedisDep, k: KeysDep) -> list[dict[str, Any]]:
    return status.workers(redis, k)
