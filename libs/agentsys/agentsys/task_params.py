"""Parameters of each task type, validated wherever a task is submitted."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentsys import agents, defaults
from agentsys.errors import InputError
from agentsys.symbols import SYMBOL_RE

MAX_SYMBOLS = 100_000


def _symbols(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    bad = [s for s in value if not isinstance(s, str) or not SYMBOL_RE.match(s)]
    if bad:
        raise ValueError(f"invalid symbol(s): {', '.join(map(str, bad[:5]))}")
    return sorted(set(value))


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteParams(_Params):
    model_config = ConfigDict(extra="allow")
    description: str = Field(min_length=1, max_length=10_000)


class PipelineParams(_Params):
    symbols: list[str] | None = Field(default=None, max_length=MAX_SYMBOLS, description="null: the whole universe")
    ts: datetime | None = Field(default=None, description="bar time; null: the latest bar")
    _check = field_validator("symbols")(classmethod(lambda cls, v: _symbols(v)))


class Periods(_Params):
    fast: int | None = Field(default=None, ge=1, le=10_000)
    mid: int | None = Field(default=None, ge=2, le=10_000)
    slow: int | None = Field(default=None, ge=3, le=10_000)

    @model_validator(mode="after")
    def _ordered(self) -> Periods:
        given = [self.fast, self.mid, self.slow]
        if any(v is not None for v in given):
            if any(v is None for v in given):
                raise ValueError("give all three periods (fast, mid, slow) or none")
            if not self.fast < self.mid < self.slow:  # type: ignore[operator]
                raise ValueError("periods must satisfy fast < mid < slow")
        return self


class ReplayParams(Periods):
    replace: bool = False


class BackfillParams(_Params):
    symbols: list[str] = Field(min_length=1, max_length=MAX_SYMBOLS)
    start: datetime
    end: datetime
    interval_s: int | None = Field(default=None, ge=1, le=86_400)
    source: Literal["synthetic", "http"] | None = None
    replace: bool = False
    _check = field_validator("symbols")(classmethod(lambda cls, v: _symbols(v)))

    @model_validator(mode="after")
    def _range(self) -> BackfillParams:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class RecoverParams(_Params):
    agent: agents.Name | None = None
    symbols: list[str] | None = Field(default=None, max_length=MAX_SYMBOLS)
    _check = field_validator("symbols")(classmethod(lambda cls, v: _symbols(v)))


class RunAgentParams(_Params):
    agent: agents.Name
    shards: list[int] | None = Field(default=None, max_length=100_000)


class CleanupParams(_Params):
    older_than_days: int = Field(default=defaults.TASK_HISTORY_DAYS, ge=1, le=3650,
                                 description="ended tasks older than this many days are deleted")


class ReshardParams(_Params):
    shard_size: int = Field(ge=1, le=defaults.MAX_SHARD_SIZE, description="symbols per shard after the re-shard")


PARAMS: dict[str, type[_Params]] = {
    "note": NoteParams, "pipeline": PipelineParams, "replay": ReplayParams, "backfill": BackfillParams,
    "recover": RecoverParams, "run_agent": RunAgentParams,
    "cleanup": CleanupParams, "reshard": ReshardParams,
}


def validate(task_type: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validated params as JSON-able values; InputError names the bad field."""
    model = PARAMS.get(task_type)
    if model is None:
        return dict(params or {})
    try:
        return model.model_validate(params or {}).model_dump(mode="json", exclude_none=False)
    except ValidationError as error:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in error.errors()]
        raise InputError(f"invalid {task_type} params: " + "; ".join(parts)) from None
