"""Worker settings, from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator

from agentsys import defaults, keys, triggers
from agentsys.settings import CommonSettings, load


class WorkerSettings(CommonSettings):
    worker_queues: str = Field(default=",".join(keys.WORKER_QUEUES),
                               description="comma-separated queues, in priority order")
    worker_name: str | None = None
    worker_ttl: int = Field(default=defaults.WORKER_TTL, ge=20, le=3600)
    job_monitoring_interval: int = Field(default=defaults.JOB_MONITORING_INTERVAL, ge=1, le=600)
    maintenance_interval: int = Field(default=defaults.MAINTENANCE_INTERVAL, ge=1, le=3600)
    price_interval_s: int = Field(default=defaults.PRICE_INTERVAL_S, ge=1, le=86_400)
    synthetic_seed: int = defaults.SYNTHETIC_SEED
    max_job_ticks: int = Field(default=defaults.MAX_JOB_TICKS, ge=100, le=100_000_000,
                               description="symbol-ticks one shard job takes at most; then it re-triggers itself")
    worker_preload: str = Field(
        default=",".join(triggers.job_modules()),
        description="modules imported before forking, so job processes start warm")
    worker_with_scheduler: bool = Field(default=True, description="move due retries (backoff) back to their queues")
    worker_crash_retries: int = Field(default=defaults.CRASH_RETRIES, ge=0, le=100,
                                      description="reruns of a job whose process died (SIGKILL, out of memory)")
    worker_max_job_bytes: int = Field(default=defaults.JOB_MAX_BYTES, ge=1024, le=1024**3,
                                      description="larger job payloads are refused, in bytes")

    @field_validator("worker_queues")
    @classmethod
    def _known(cls, value: str) -> str:
        names = [q.strip() for q in value.split(",") if q.strip()]
        allowed = set(keys.QUEUES) | {keys.low(q) for q in keys.QUEUES}
        unknown = [q for q in names if q not in allowed]
        if not names or unknown:
            raise ValueError(f"unknown queue(s) {unknown or value!r}; choose from {', '.join(keys.QUEUES)}")
        return ",".join(names)

    @property
    def queues(self) -> list[str]:
        """The configured queues, then the low-priority twins of those that have none listed."""
        names = self.worker_queues.split(",")
        return names + [keys.low(q) for q in names if not q.endswith(keys.LOW_SUFFIX) and keys.low(q) not in names]


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    return load(WorkerSettings)


class SchedulerSettings(CommonSettings):
    """``agent-scheduler``'s settings."""

    scheduler_name: str | None = Field(default=None, description="name in logs and RQ's registries (default host:pid)")
    scheduler_lock_ttl_ms: int = Field(default=defaults.SCHEDULER_LOCK_TTL_MS, ge=500, le=600_000,
                                       description="leader lease, in ms: a standby takes over within it")
    scheduler_poll: float = Field(default=defaults.SCHEDULER_POLL, gt=0, le=60,
                                  description="seconds between looks at the schedules and the lease")
    scheduler_defaults: bool = Field(default=True, description="install the default schedules when absent")
    scheduler_move_retries: bool = Field(default=True,
                                         description="move due jobs of RQ's scheduled registries to their queues")
    price_interval_s: int = Field(default=defaults.PRICE_INTERVAL_S, ge=1, le=86_400,
                                  description="seconds between universe ticks (the default schedule)")
