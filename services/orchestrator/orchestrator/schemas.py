"""Request and response bodies of the task routes (the other routers keep theirs inline)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentsys.models import Priority, TaskRun

TASK_EXAMPLE: dict[str, Any] = {
    "id": "3f0c9b1e8a2d4c6f9e7b5a3c1d0e2f4a", "type": "note", "params": {"description": "check AAPL"},
    "priority": "normal", "state": "finished", "progress": 1.0,
    "result": {"description": "check AAPL", "recorded_by": "host.4242"}, "error": None, "traceback": None,
    "attempts": 1, "worker": "host.4242", "queue": "control", "enqueued_at": "2026-01-05T09:30:00.120000Z",
    "started_at": "2026-01-05T09:30:00.180000Z", "ended_at": "2026-01-05T09:30:00.190000Z",
    "created_at": "2026-01-05T09:30:00.120000Z", "updated_at": "2026-01-05T09:30:00.190000Z",
}
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
"""Task ids: what ``uuid4().hex`` and schedulers make, nothing that needs escaping."""
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}$"
"""Free-form filter values (worker names): printable, no spaces, no control characters."""

LegacyPriority = Annotated[int, Field(ge=0, le=10)]


class TaskOut(TaskRun):
    """A task as stored in ``task_runs``; ``traceback`` only with ``?traceback=true``."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [TASK_EXAMPLE]})


class TaskPage(BaseModel):
    """One page of tasks, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [TASK_EXAMPLE], "next_cursor": None}]})
    items: list[TaskOut]
    next_cursor: str | None = None


class TaskSubmit(BaseModel):
    """A typed task, or the original design's ``{"description", "priority": int}`` (a note)."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}$",
                             description="task type; omitted with a description: a note")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of the task type")
    priority: Priority | LegacyPriority = Field(
        default=Priority.normal,
        description="high (front of the queue), normal, low (the .low twin queue); an integer is the "
                    "original design's: 0 = low, 1 = normal, 2 and more = high")
    description: str | None = Field(default=None, min_length=1, max_length=10_000,
                                    description="the original design's note text")

    @model_validator(mode="after")
    def _typed_or_note(self) -> TaskSubmit:
        if self.type is None and self.description is None:
            raise ValueError("give a task type (with params) or a description (a note)")
        if self.description is not None and self.type not in (None, "note"):
            raise ValueError("description belongs to note tasks only; use params for other types")
        return self

    @property
    def task_type(self) -> str:
        return self.type or "note"

    @property
    def task_params(self) -> dict[str, Any]:
        if self.description is not None:
            return {**self.params, "description": self.description}
        return self.params

    @property
    def task_priority(self) -> Priority:
        return priority_of(self.priority)


def priority_of(value: Priority | int) -> Priority:
    """The original design's integer priority on our three levels."""
    if isinstance(value, Priority):
        return value
    return Priority.low if value <= 0 else Priority.normal if value == 1 else Priority.high


SUBMIT_EXAMPLES: dict[str, dict[str, Any]] = {
    "note (original design)": {"summary": "the original three-service body: a note",
                               "value": {"description": "rebalance the watch list", "priority": 1}},
    "pipeline": {"summary": "one tick for two symbols, at the front of the queue",
                 "value": {"type": "pipeline", "params": {"symbols": ["AAPL", "MSFT"]}, "priority": "high"}},
    "backfill": {"summary": "synthetic bars over a day",
                 "value": {"type": "backfill", "params": {"symbols": ["AAPL"], "start": "2026-01-05T00:00:00Z",
                                                          "end": "2026-01-06T00:00:00Z", "interval_s": 60,
                                                          "source": "synthetic"}}},
    "replay": {"summary": "a CSV body inline (or POST text/csv to /tasks/replay)",
               "value": {"type": "replay", "params": {"csv": "symbol,ts,price\nAAPL,2026-01-05T09:30:00Z,185.2\n",
                                                      "fast": 3, "mid": 5, "slow": 8}}},
    "recover": {"summary": "re-run the bang agent's catch-up for a symbol",
                "value": {"type": "recover", "params": {"agent": "bang", "symbols": ["AAPL"]}, "priority": "low"}},
    "run_agent": {"summary": "trigger one agent on every shard",
                  "value": {"type": "run_agent", "params": {"agent": "indicator", "shards": None}}},
    "reshard": {"summary": "renumber the universe into shards of 5,000 symbols (safe while it ticks)",
                "value": {"type": "reshard", "params": {"shard_size": 5000}}},
}
