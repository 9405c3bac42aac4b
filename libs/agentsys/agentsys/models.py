"""Pydantic models at the system's edges: tasks as stored and as submitted."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskState(StrEnum):
    queued = "queued"
    scheduled = "scheduled"
    deferred = "deferred"
    started = "started"
    finished = "finished"
    failed = "failed"
    canceled = "canceled"
    stopped = "stopped"


ENDED_STATES = frozenset({TaskState.finished, TaskState.failed, TaskState.canceled, TaskState.stopped})
"""States a task never leaves by itself."""


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"


class TaskRun(BaseModel):
    """One row of ``task_runs``: what a user asked for and what became of it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.normal
    state: TaskState
    progress: float = 0.0
    result: Any = None
    error: str | None = None
    traceback: Any = None
    attempts: int = 0
    worker: str | None = None
    queue: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES
