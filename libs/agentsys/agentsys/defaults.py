"""Every default of the system in one place, each with its unit."""

from __future__ import annotations

from typing import Final

KEY_PREFIX = "agentsys"
"""Prefix of every Redis key and channel of ours (RQ's own ``rq:`` keys aside)."""

EMA_FAST = 9
"""Default fast EMA period, in prices."""
EMA_MID = 21
"""Default middle EMA period, in prices."""
EMA_SLOW = 55
"""Default slow EMA period, in prices."""

SHARD_SIZE = 2500
"""Symbols per shard when a symbol is added without an explicit shard (the ``SHARD_SIZE`` setting).

A live tick costs each shard one job a second (a fork, a connection, a few statements), and
a note or a tick task waits for a worker to finish its shard job: at 1,000 the fixed cost
was a fifth of the live path's CPU; at 5,000 a 10,000-symbol universe's notes waited over
a second behind 400 ms jobs; 2,500 passes both at 10,000 (docs/pipeline.md)."""
MAX_SHARD_SIZE = 100_000
"""Largest shard size the setting and a ``reshard`` task accept, in symbols."""

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

LOST_AFTER_S = 30.0
"""Seconds after enqueueing before a 'queued' job that is on no queue list counts as lost."""
PENDING_TTL = 3600
"""Seconds a pending trigger key lives at most; the sweep repairs a stale one sooner."""
AGENT_RESULT_TTL = 300
"""Seconds RQ keeps a finished shard job (their effects live in PostgreSQL)."""
PRICE_INTERVAL_S = 5
"""Bar interval of live sources (synthetic, http), in seconds."""
MAX_CATCHUP_BARS = 720
"""Bars a live price job fetches at most per symbol in one run."""
MAX_JOB_TICKS = 250_000
"""Symbol-ticks one shard job takes at most (the oldest of each symbol): past that it commits
and re-triggers itself, so a new symbol's history or a long outage never holds more in memory."""
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

# ---- servers and logging (CommonSettings) ----------------------------------------------------
REDIS_URL = "redis://127.0.0.1:6379/0"
"""Redis of a development machine (``REDIS_URL``)."""
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/agentsys"
"""PostgreSQL of a development machine (``DATABASE_URL``)."""
ENVIRONMENT: Final = "development"
"""Deployment kind (``ENVIRONMENT``): development, test or production."""
LOG_LEVEL: Final = "INFO"
"""Lowest level logged (``LOG_LEVEL``)."""
LOG_FORMAT: Final = "auto"
"""``auto`` is console on a terminal, JSON otherwise (``LOG_FORMAT``)."""
PG_PROBE_TIMEOUT = 3.0
"""Seconds a readiness probe or a metrics scrape waits for a PostgreSQL connection (they have their own deadline)."""

# ---- orchestrator --------------------------------------------------------------------------
API_HOST = "127.0.0.1"
"""Address the API binds (loopback: no token needed)."""
API_PORT = 8000
"""TCP port of the API."""
API_MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest request body, in bytes (a replay CSV is the big one)."""

# ---- gateway -------------------------------------------------------------------------------
GATEWAY_HOST = "127.0.0.1"
"""Address the gateway binds."""
GATEWAY_PORT = 8080
"""TCP port of the gateway."""
ORCHESTRATOR_URL = "http://127.0.0.1:8000"
"""Where the gateway's /api proxy and agentctl find the API."""
GATEWAY_CLIENT_BUFFER = 1000
"""Messages queued per WebSocket client; one that falls this far behind is closed (code 4008)."""
GATEWAY_BACKFILL_LIMIT = 1000
"""Bang events per backfill reply (more come in pages)."""
GATEWAY_RECENT_BANGS = 100
"""Bang events a backfill without a cursor returns."""
GATEWAY_RECONCILE_INTERVAL = 1.0
"""Seconds between two reads of bang_events that advance the resume cursor."""
GATEWAY_CLOSE_TIMEOUT = 5.0
"""Seconds to wait for a dropped client's close frame to go out."""
GATEWAY_WS_MAX_MESSAGE = 64 * 1024
"""Largest message a WebSocket client may send, in bytes."""
GATEWAY_DB_TIMEOUT = 5.0
"""Seconds the gateway waits for a pooled PostgreSQL connection."""
GATEWAY_SEEN_RETENTION_S = 30.0
"""Seconds the gateway remembers a bang event it fanned out, so a late Pub/Sub copy is dropped."""
PROXY_CONNECT_TIMEOUT = 5.0
"""Seconds the gateway's proxy waits to connect to the orchestrator."""
PROXY_READ_TIMEOUT = 75.0
"""Seconds the proxy waits for the orchestrator's next bytes (above its 60 s long poll)."""

# ---- workers and the scheduler ---------------------------------------------------------------
HEARTBEAT_MIN_GAP = 1.0
"""Seconds between two published heartbeats, however often RQ beats."""
REDIS_WAIT_S = 60.0
"""Seconds a worker waits for Redis to come back to settle a job that ended while it was away."""
MAX_ABANDONED_ATTEMPTS = 3
"""Runs of a task at most when its workers keep dying under it; then it is failed."""
RQ_BOOKKEEPING_EVERY = 10.0
"""Seconds between refreshes of RQ's scheduler registries and per-queue locks."""

# ---- price sources ---------------------------------------------------------------------------
BREAKER_FAILURES = 5
"""Consecutive failures that open a source's circuit breaker."""
BREAKER_COOLDOWN_S = 30.0
"""Seconds an opened breaker refuses calls before it lets a probe through."""
BREAKER_PROBE_TTL_S = 60.0
"""Seconds a half-open probe holds its slot at most (it should report long before)."""
HTTP_SOURCE_URL = "https://api.binance.com"
"""Base URL of the HTTP price source (Binance's API; tests point it at a local server)."""
HTTP_CONNECT_TIMEOUT_S = 3.0
"""Seconds the HTTP price source waits to connect."""
HTTP_READ_TIMEOUT_S = 10.0
"""Seconds the HTTP price source waits for an answer."""
HTTP_RETRIES = 3
"""Retries of an HTTP price request after a timeout, 5xx or 429."""
HTTP_BACKOFF_S = 0.5
"""First HTTP retry delay, in seconds; doubles, with jitter."""
HTTP_BACKOFF_CAP_S = 8.0
"""Largest HTTP retry delay, in seconds."""
HTTP_MAX_RETRY_AFTER_S = 10.0
"""Longest ``Retry-After`` the HTTP source waits for, in seconds; a longer one opens the breaker."""
HTTP_MAX_PAGES = 50
"""Requests per HTTP fetch at most."""

# ---- agentctl and process mode ---------------------------------------------------------------
AGENTCTL_HTTP_TIMEOUT = 10.0
"""Seconds agentctl waits for a response, on top of any long poll asked for."""
AGENTCTL_WAIT = 3600.0
"""Seconds a bare ``agentctl ... --wait`` waits for the task to end."""
BURST_WORKERS = 2
"""Burst workers ``agentctl replay`` starts when no worker serves the agent queues."""
STATUS_BANGS = 10
"""Last bangs ``agentctl status`` shows."""
RUN_DIR = ".run"
"""Run folder of process mode, relative to the checkout (``RUN_DIR`` overrides it)."""
STOP_TIMEOUT = 30.0
"""Seconds ``agentctl worker stop`` gives a worker to finish its job before it is killed."""
PROCESS_WORKER_STOP_TIMEOUT = 60
"""Seconds supervisord gives a stopping worker to finish its job before it kills it."""
PROCESS_START_TIMEOUT = 120.0
"""Seconds ``make run``'s whole start may take (a first run includes initdb)."""
DEMO_SYMBOLS = 50
"""Symbols ``make run`` seeds into an empty universe (``DEMO_SYMBOLS``)."""
DEMO_SHARD_SIZE = 25
"""Smallest demo shard: a small demo is cut in two shards (two workers busy), of at least this
many symbols; a large one shards as ``POST /symbols`` does (SHARD_SIZE)."""
