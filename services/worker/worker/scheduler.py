"""``agent-scheduler``: run the named schedules, with one active scheduler at a time.

Why not ``rq cron``: RQ 3's ``CronJob.enqueue`` builds ``Queue(name)`` with no serializer,
so it enqueues *pickled* jobs (our JSON-only workers refuse them, and pickle would let
anyone who can write to Redis run code on a worker), and nothing stops two ``rq cron``
processes from both enqueuing every tick. So this keeps RQ's cron machinery (``CronJob``
timing in :mod:`worker.schedule_timing`, croniter, RQ's cron-job and cron-scheduler
registries for monitoring) and changes what matters:

- it submits each tick through :func:`agentsys.tasks.submit` (a JSON job and a
  ``task_runs`` row), under a task id derived from (schedule, tick);
- it acts only while it holds a Redis leader lease (:class:`worker.leader.LeaderLock`,
  ``SET NX PX``, renewed by compare-and-pexpire); standbys look every ``SCHEDULER_POLL``
  seconds and take over within the lease's life when the leader dies;
- it claims each tick with a compare-and-set on ``Keys.schedule_last(name)`` that also
  checks the lease (one Lua script), so a paused ex-leader cannot fire a tick a successor
  fired; a tick claimed but not submitted (a crash in between) is submitted by whoever
  leads next, and the derived task id makes that submission happen once.

The schedules are re-read from Redis on every pass, so ``PUT /schedules/...`` takes effect
without a restart. The leader also moves due jobs from RQ's scheduled registries (retries
with backoff) back to their queues, through RQ's own per-queue scheduler locks, so workers
can run with ``WORKER_WITH_SCHEDULER=false``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from redis import Redis
from redis.exceptions import RedisError
from rq import cron_job_registry
from rq.cron import CronScheduler
from rq.defaults import DEFAULT_CRON_JOB_HISTORY_LIMIT, DEFAULT_CRON_JOB_HISTORY_TTL
from rq.exceptions import SchedulerNotFound
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from agentsys import db, defaults, keys, tasks
from agentsys.errors import TaskExists, first_line
from agentsys.exitcodes import RET_CONNECT, RET_OK
from agentsys.keys import Keys
from agentsys.logging import configure_logging, get_logger
from agentsys.preflight import check_credentials
from agentsys.redis import connect
from agentsys.schedules import Schedule, ScheduleSpec, list_schedules
from agentsys.settings import load
from worker.leader import LeaderLock
from worker.schedule_timing import ScheduleTiming
from worker.settings import SchedulerSettings

log = get_logger("scheduler")

ALL_QUEUES = keys.ALL_QUEUES
"""Queues whose scheduled registries the leader empties of due jobs."""
TICK_NAMESPACE = uuid.UUID("6f1c2a52-8d0e-4a51-9b7e-3c2f5a1d7e90")
"""Namespace of the task ids derived from (prefix, schedule, tick)."""

_CLAIM = """
-- KEYS[1] leader lease, KEYS[2] last fired tick; ARGV[1] our lease token, ARGV[2] the tick
if redis.call('get', KEYS[1]) ~= ARGV[1] then return -1 end
local last = tonumber(redis.call('get', KEYS[2]))
if last and last >= tonumber(ARGV[2]) then return 0 end
redis.call('set', KEYS[2], ARGV[2])
return 1
"""


def default_schedules(settings: SchedulerSettings) -> dict[str, ScheduleSpec]:
    """Installed on a scheduler's start when absent (disable one with ``enabled: false``;
    a deleted default comes back at the next start).

    - ``universe-tick``: the price agent on every shard each PRICE_INTERVAL_S seconds
      (``run_agent``), which brings live symbols up to the latest bar;
    - ``recovery-sweep``: ``recover`` every 2 minutes: lagging shards re-triggered,
      abandoned tasks rerun;
    - ``daily-cleanup``: ``cleanup`` at 03:30 UTC: ended tasks older than
      TASK_HISTORY_DAYS days and expired RQ registry entries go.
    """
    return {
        "universe-tick": ScheduleSpec(type="run_agent", params={"agent": "price"},
                                      interval_s=settings.price_interval_s),
        "recovery-sweep": ScheduleSpec(type="recover", params={}, interval_s=defaults.SWEEP_INTERVAL_S),
        "daily-cleanup": ScheduleSpec(type="cleanup", params={}, cron=defaults.CLEANUP_CRON, timezone="UTC"),
    }


def tick_task_id(prefix: str, name: str, tick: datetime) -> str:
    """The task id of one tick of one schedule: the same in every scheduler."""
    return uuid.uuid5(TICK_NAMESPACE, f"{prefix}:{name}:{int(tick.timestamp())}").hex


class AgentScheduler(CronScheduler):
    """RQ's cron scheduler, leader-elected, enqueuing JSON tasks for the named schedules."""

    def __init__(self, redis: Redis, settings: SchedulerSettings, *, name: str | None = None) -> None:
        super().__init__(connection=redis, logging_level=settings.log_level, name=name or settings.scheduler_name or "")
        self.serializer = JSONSerializer
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.lease = LeaderLock(redis, self.keys.scheduler_lock(), f"{self.name}/{uuid.uuid4().hex[:8]}",
                                ttl_ms=settings.scheduler_lock_ttl_ms)
        self.leading = False
        self._claim = redis.register_script(_CLAIM)
        self._timings: dict[str, ScheduleTiming] = {}
        self._confirmed: dict[str, int] = {}  # schedule -> its latest tick known to be submitted
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._rq_at = 0.0
        self.retries: RQScheduler | None = None
        if settings.scheduler_move_retries:
            self.retries = RQScheduler(ALL_QUEUES, connection=redis, serializer=JSONSerializer, name=self.name)

    # ---- one pass ---------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Take or renew the lease; as leader, fire what is due. Returns the ticks fired."""
        self._lead()
        bookkeeping = time.monotonic() - self._rq_at > defaults.RQ_BOOKKEEPING_EVERY
        if bookkeeping:
            self._rq_at = time.monotonic()
            self.heartbeat()  # RQ's cron scheduler registry (leader and standbys alike)
        if not self.leading:
            return []
        now = now or datetime.now(UTC)
        self._refresh()
        names = list(self._timings)
        lasts = self.connection.mget([self.keys.schedule_last(n) for n in names]) if names else []
        fired = []
        for name, last in zip(names, lasts, strict=True):
            tick = self._tick(self._timings[name], now, int(last) if last is not None else None)
            if tick is not None:
                fired.append((name, tick))
            if not self.leading:
                break
        if self.leading and self.retries is not None:
            self._move_due_jobs(bookkeeping)
        return fired

    def _lead(self) -> None:
        was = self.leading
        self.leading = self.lease.acquire()
        if self.leading and not was:
            self._confirmed.clear()
            self._rq_at = 0.0  # take RQ's per-queue scheduler locks in this very pass
            log.info("leading: this scheduler now fires the schedules", scheduler=self.name)
        elif was and not self.leading:
            self._step_down("lease lost")

    def _step_down(self, why: str) -> None:
        self.leading = False
        log.warning("no longer leading", scheduler=self.name, reason=why)
        if self.retries is not None:
            self.retries.release_locks()

    def _refresh(self) -> None:
        """Re-read the schedules (changes take effect on the next pass)."""
        found = {s.name: s for s in list_schedules(self.connection, self.keys) if s.enabled}
        changed = set(found) != set(self._timings)
        for name, schedule in found.items():
            current = self._timings.get(name)
            if current is None or current.schedule != schedule:
                self._timings[name] = ScheduleTiming(schedule)
                changed = True
        for name in set(self._timings) - set(found):
            del self._timings[name]
        if changed:
            self._cron_jobs = list(self._timings.values())  # type: ignore[assignment]
            self.save()
            log.info("schedules loaded", schedules=sorted(self._timings))

    def _tick(self, timing: ScheduleTiming, now: datetime, last: int | None) -> datetime | None:
        due = timing.due(now)
        if due is None:
            return None
        tick, name = int(due.timestamp()), timing.name
        if last is not None and tick <= last:
            if tick == last and self._confirmed.get(name) != tick:
                self._confirm(timing, due)  # claimed by a leader that may have died before submitting
            return None
        claimed = self._claim(keys=[self.lease.key, self.keys.schedule_last(name)], args=[self.lease.token, tick])
        if claimed == -1:
            self._step_down("lease taken over")
            return None
        if claimed == 0:
            return None
        if not timing.is_open(due):
            self._confirmed[name] = tick
            log.debug("tick skipped: market closed", schedule=name, tick=due.isoformat())
            return None
        self._submit(timing, due)
        return due

    def _confirm(self, timing: ScheduleTiming, due: datetime) -> None:
        tick = int(due.timestamp())
        if timing.is_open(due):
            task_id = tick_task_id(self.settings.key_prefix, timing.name, due)
            conn = self._db()
            found = conn.execute("SELECT 1 FROM task_runs WHERE id = %s", (task_id,)).fetchone()
            conn.rollback()
            if found is None:
                log.warning("submitting a tick claimed but not submitted", schedule=timing.name, tick=due.isoformat())
                self._submit(timing, due)
                return
        self._confirmed[timing.name] = tick

    def _submit(self, timing: ScheduleTiming, due: datetime) -> None:
        schedule = timing.schedule
        task_id = tick_task_id(self.settings.key_prefix, schedule.name, due)
        conn = self._db()
        try:
            tasks.submit(self.connection, conn, self.keys, type=schedule.type, params=schedule.params,
                         priority=schedule.priority, task_id=task_id)
        except TaskExists:
            pass  # submitted already (by us before a crash, or by the leader before us)
        self._confirmed[schedule.name] = int(due.timestamp())
        timing.set_enqueue_time(due)
        with self.connection.pipeline() as pipe:  # RQ's cron bookkeeping, for its monitoring tools
            pipe.zadd(timing.job_history_key, {task_id: due.timestamp()})
            pipe.zremrangebyrank(timing.job_history_key, 0, -(DEFAULT_CRON_JOB_HISTORY_LIMIT + 1))
            pipe.expire(timing.job_history_key, DEFAULT_CRON_JOB_HISTORY_TTL)
            cron_job_registry.add(schedule.name, pipe, enqueue_timestamp=due.timestamp())
            pipe.execute()
        log.info("schedule fired", schedule=schedule.name, tick=due.isoformat(), task_id=task_id, type=schedule.type)

    def _move_due_jobs(self, bookkeeping: bool) -> None:
        """Due jobs of RQ's scheduled registries back to their queues, under RQ's per-queue
        scheduler locks (a worker running its own scheduler may hold some: it moves those)."""
        assert self.retries is not None
        if bookkeeping:
            if self.retries.acquired_locks != set(ALL_QUEUES):
                self.retries.acquire_locks()
            self.retries.heartbeat()
        self.retries.enqueue_scheduled_jobs()

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings.database)
        return self._conn

    # ---- the loop ---------------------------------------------------------------------
    def install_defaults(self) -> list[str]:
        """Write each default schedule that does not exist yet; returns the names written."""
        written = []
        now = datetime.now(UTC)
        for name, spec in default_schedules(self.settings).items():
            schedule = Schedule(name=name, updated_at=now, **spec.model_dump())
            if self.connection.hsetnx(self.keys.schedules(), name, schedule.model_dump_json()):
                written.append(name)
        if written:
            log.info("default schedules installed", schedules=written)
        return written

    def sleep_time(self, now: datetime | None = None) -> float:
        """Seconds until the next pass: the next tick, a lease renewal or a look, whichever is first."""
        poll = self.settings.scheduler_poll
        lease_s = self.settings.scheduler_lock_ttl_ms / 1000
        if not self.leading:
            return min(poll, lease_s / 4)
        now = now or datetime.now(UTC)
        wait = min(poll, lease_s / 3)
        for timing in self._timings.values():
            wait = min(wait, (timing.tick_after(now) - now).total_seconds())
        return max(wait, 0.005)

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def work(self) -> None:
        """Run until SIGTERM or SIGINT; on the way out give the lease up so a standby leads at once."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.register_birth()
        if self.retries is not None:
            self.retries.register_birth()
        log.info("scheduler started", scheduler=self.name, lease_ms=self.settings.scheduler_lock_ttl_ms)
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except (RedisError, psycopg.Error) as error:
                    log.warning("pass failed; retrying", error=first_line(error, fallback=""))
                    self._close_db()
                self._stop.wait(self.sleep_time())
        finally:
            self.close()

    def close(self) -> None:
        try:
            if self.leading:
                self.lease.release()
            if self.retries is not None:
                self.retries.stop()
            with contextlib.suppress(SchedulerNotFound):  # never registered (driven pass by pass)
                self.register_death()
        except RedisError as error:
            log.warning("could not deregister", error=str(error))
        self.leading = False
        self._close_db()
        log.info("scheduler stopped", scheduler=self.name)

    def _close_db(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="scheduler name (default: SCHEDULER_NAME, else host:pid)")
    parser.add_argument("--no-defaults", action="store_true", help="do not install the default schedules")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.name:
        overrides["scheduler_name"] = args.name
    if args.no_defaults:
        overrides["scheduler_defaults"] = False
    settings = load(SchedulerSettings, **overrides)
    configure_logging("scheduler", level=settings.log_level, fmt=settings.log_format)
    # Refused credentials stop it at once (one line, exit status RET_AUTH); an absent
    # Redis too (it cannot lead without one), but not an absent PostgreSQL: passes retry it.
    redis_probe, pg_probe = check_credentials("agent-scheduler", settings)
    if redis_probe.outcome != "ok":
        log.error("cannot reach Redis", error=redis_probe.detail)
        return RET_CONNECT
    if pg_probe.outcome != "ok":
        log.warning("cannot reach PostgreSQL yet; ticks are submitted once it answers", error=pg_probe.detail)
    redis = connect(settings.redis)
    scheduler = AgentScheduler(redis, settings)
    if settings.scheduler_defaults:
        scheduler.install_defaults()
    scheduler.work()
    return RET_OK


if __name__ == "__main__":
    raise SystemExit(main())
