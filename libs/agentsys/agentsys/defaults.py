"""Every default of the system in one place, each with its unit."""

from __future__ import annotations

KEY_PREFIX = "agentsys"
"""Prefix of every Redis key and channel of ours (RQ's own ``rq:`` keys aside)."""

EMA_FAST = 9
"""Default fast EMA period, in prices."""
EMA_MID = 21
"""Default middle EMA period, in prices."""
EMA_SLOW = 55
"""Default slow EMA period, in prices."""

SHARD_SIZE = 1000
"""Symbols per shard when a symbol is added without an explicit shard."""

JOB_TIMEOUT = 600
"""Hard timeout of one job, in seconds."""
RESULT_TTL = 3600
"""How long RQ keeps a finished job's result, in seconds (``task_runs`` keeps it for good)."""
FAILURE_TTL = 7 * 24 * 3600
"""How long RQ keeps a failed job, in seconds (RQ's default is a year)."""

WORKER_TTL = 30
"""Seconds a worker's registration lives without a heartbeat; an idle worker beats every WORKER_TTL - 15."""
JOB_MONITORING_INTERVAL = 5
"""Seconds between heartbeats while a job runs."""
HEARTBEAT_MAX_AGE = 60
"""Seconds after which the health check calls a worker's heartbeat stale."""
MAINTENANCE_INTERVAL = 60
"""Seconds between a worker's registry clean-ups (RQ's default is 600)."""

RETRY_MAX = 5
"""Retries of a job after a transient Redis or PostgreSQL error."""
RETRY_BASE = 1.0
"""First retry delay, in seconds; doubles each time, with jitter."""
RETRY_CAP = 60.0
"""Largest retry delay, in seconds."""
CRASH_RETRIES = 3
"""Reruns of a job whose process died under it (SIGKILL, out of memory); every job is idempotent."""
JOB_MAX_BYTES = 8 * 1024 * 1024
"""Largest job payload a worker runs, in bytes (jobs carry ids and small params, never rows)."""

DB_POOL_SIZE = 10
"""PostgreSQL connections per API process at most (the orchestrator admits as many requests to them)."""

WAIT_POLL = 0.05
"""Seconds between two looks at a task's state while waiting for it."""

HISTORY_CACHE_TTL = 300
"""Seconds a cached symbol history lives in Redis."""

STATEMENT_TIMEOUT_MS = 60_000
"""PostgreSQL statement timeout of our connections, in milliseconds."""
CONNECT_TIMEOUT = 5
"""Seconds to wait for a Redis or PostgreSQL connection."""

PENDING_TTL = 3600
"""Seconds a pending trigger key lives at most; the sweep repairs a stale one sooner."""
AGENT_RESULT_TTL = 300
"""Seconds RQ keeps a finished shard job (their effects live in PostgreSQL)."""
PRICE_INTERVAL_S = 5
"""Bar interval of live sources (synthetic, http), in seconds."""
MAX_CATCHUP_BARS = 720
"""Bars a live price job fetches at most per symbol in one run."""
SYNTHETIC_SEED = 0
"""Seed of the synthetic source."""
ERROR_SAMPLES = 20
"""Bad rows listed at most in one error message."""

SCHEDULER_LOCK_TTL_MS = 10_000
"""Life of the scheduler's leader lock without renewal, in milliseconds: the standby's takeover bound."""
SCHEDULER_POLL = 1.0
"""Seconds between two looks at the schedules (and, for a standby, at the leader lock)."""
SWEEP_INTERVAL_S = 120
"""Seconds between two runs of the default recovery-sweep schedule."""
CLEANUP_CRON = "30 3 * * *"
"""Cron expression (UTC) of the default daily clean-up schedule."""
TASK_HISTORY_DAYS = 7
"""Days an ended task stays in ``task_runs`` before the clean-up deletes it."""
