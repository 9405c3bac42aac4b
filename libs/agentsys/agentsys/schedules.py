"""Named schedules: what the scheduler enqueues, and when.

Stored in one Redis hash (``Keys.schedules()``, name -> JSON of :class:`Schedule`) so every
API replica and the one active scheduler see the same set without a migration. A schedule
runs a task type with fixed params either every ``interval_s`` seconds or on a ``cron``
expression read in ``timezone``, optionally only while a market is open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from redis import Redis

from agentsys import task_params
from agentsys.errors import InputError
from agentsys.keys import Keys
from agentsys.models import Priority

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Schedule names: 1-64 characters of letters, digits, ``_ . -``."""
MAX_INTERVAL_S = 31 * 24 * 3600
"""Longest interval between two runs, in seconds."""
UNSCHEDULABLE = frozenset({"replay"})
"""Task types that need a payload a schedule cannot hold (a replay needs its CSV rows)."""


class MarketHours(BaseModel):
    """Open days and hours, in the schedule's time zone; runs outside them are skipped."""

    model_config = ConfigDict(extra="forbid")

    days: list[int] = Field(default=[0, 1, 2, 3, 4], min_length=1, max_length=7,
                            description="open weekdays, Monday = 0")
    open: time = Field(default=time(9, 30), description="opening time, local")
    close: time = Field(default=time(16, 0), description="closing time, local (exclusive)")
    holidays: list[date] = Field(default_factory=list, max_length=400, description="closed dates")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in value):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("open", "close")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a local time without a zone (the schedule's timezone applies)")
        return value

    @model_validator(mode="after")
    def _hours(self) -> MarketHours:
        if self.open >= self.close:
            raise ValueError("open must be before close")
        return self

    def is_open(self, when: datetime, tz: ZoneInfo) -> bool:
        """True when ``when`` (aware) falls inside open hours."""
        local = when.astimezone(tz)
        return (local.weekday() in self.days and local.date() not in self.holidays
                and self.open <= local.time().replace(tzinfo=None) < self.close)


class ScheduleSpec(BaseModel):
    """A schedule as a user writes it (``PUT /schedules/{name}``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"type": "pipeline", "params": {"symbols": None}, "interval_s": 5, "timezone": "UTC", "enabled": True},
        {"type": "recover", "params": {"agent": None}, "cron": "*/10 9-16 * * 1-5", "timezone": "America/New_York",
         "calendar": {"days": [0, 1, 2, 3, 4], "open": "09:30:00", "close": "16:00:00"}, "priority": "low"},
    ]})

    type: str = Field(description="task type to submit", examples=["pipeline"])
    params: dict[str, Any] = Field(default_factory=dict, description="the task's params, validated for its type")
    interval_s: int | None = Field(default=None, ge=1, le=MAX_INTERVAL_S, description="seconds between runs")
    cron: str | None = Field(default=None, min_length=9, max_length=120, description="cron expression (5 fields)")
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone of cron and calendar")
    calendar: MarketHours | None = Field(default=None, description="run only while this market is open")
    enabled: bool = True
    priority: Priority = Priority.normal

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from agentsys.tasks import TASK_TYPES

        if value not in TASK_TYPES or value in UNSCHEDULABLE:
            allowed = sorted(set(TASK_TYPES) - UNSCHEDULABLE)
            raise ValueError(f"unknown or unschedulable task type; choose from {', '.join(allowed)}")
        return value

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("type")
        if kind is None:
            return value
        try:
            return task_params.validate(kind, value)
        except InputError as error:
            raise ValueError(str(error)) from None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise ValueError("not a valid 5-field cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone (use an IANA name such as UTC or America/New_York)") from None
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSpec:
        if (self.interval_s is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_s and cron")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Schedule(ScheduleSpec):
    """A stored schedule: its spec under a name."""

    name: str = Field(pattern=NAME_PATTERN)
    updated_at: datetime


def put_schedule(redis: Redis, k: Keys, name: str, spec: ScheduleSpec, *,
                 now: datetime | None = None) -> tuple[Schedule, bool]:
    """Create or replace a schedule; returns it and whether it is new."""
    schedule = Schedule(name=name, updated_at=now or datetime.now(UTC), **spec.model_dump())
    created = redis.hset(k.schedules(), name, schedule.model_dump_json())
    return schedule, bool(created)


def _load(raw: bytes) -> Schedule | None:
    try:
        return Schedule.model_validate_json(raw)
    except ValidationError:
        return None  # written by something else (or a task type since removed): not runnable


def get_schedule(redis: Redis, k: Keys, name: str) -> Schedule | None:
    raw = redis.hget(k.schedules(), name)
    return _load(raw) if raw is not None else None  # type: ignore[arg-type]


def list_schedules(redis: Redis, k: Keys) -> list[Schedule]:
    """Every valid schedule, by name."""
    raw: dict[bytes, bytes] = redis.hgetall(k.schedules())  # type: ignore[assignment]
    found = (_load(v) for v in raw.values())
    return sorted((s for s in found if s is not None), key=lambda s: s.name)


def delete_schedule(redis: Redis, k: Keys, name: str) -> bool:
    """Remove a schedule (and the scheduler's last-run mark); False when there was none."""
    with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(k.schedules(), name)
        pipe.delete(k.schedule_last(name))
        removed, _ = pipe.execute()
    return bool(removed)
