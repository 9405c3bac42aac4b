"""When a named schedule's ticks fall: RQ's ``CronJob`` with a fixed grid and a time zone.

RQ's ``CronJob`` times an interval from its own last run and reads cron strings in the
machine's local time. Two schedulers (or a scheduler restarted after a failover) must
agree on every tick, so here ticks sit on a fixed grid: an interval schedule ticks at the
multiples of ``interval_s`` since the Unix epoch; a cron schedule at the times its
expression names in the schedule's IANA time zone (a wall time that does not exist on a
daylight-saving day runs at the same instant just after the clock jumps, a wall time that
happens twice runs once, at its first occurrence). A tick outside the schedule's market
hours is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter
from rq.cron import CronJob

from agentsys import defaults
from agentsys.schedules import Schedule
from agentsys.tasks import TASK_TYPES, queue_for

_STEP = timedelta(microseconds=1)


def _from_local(naive: datetime, schedule: Schedule) -> datetime:
    return datetime.fromtimestamp(naive.replace(tzinfo=schedule.zone, fold=0).timestamp(), UTC)


class ScheduleTiming(CronJob):
    """One schedule as an RQ cron job (so RQ's monitoring can list it), timed on our grid."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        spec = TASK_TYPES[schedule.type]
        super().__init__(
            queue_name=queue_for(spec.queue, schedule.priority)[0],
            func_name=spec.func,
            kwargs={"params": schedule.params},
            interval=schedule.interval_s,
            cron=schedule.cron,
            job_timeout=spec.timeout,
            result_ttl=defaults.RESULT_TTL,
            failure_ttl=defaults.FAILURE_TTL,
            name=schedule.name,
        )
        self.next_enqueue_time = self.get_next_enqueue_time()

    # ---- the grid -----------------------------------------------------------------------
    def tick_at_or_before(self, when: datetime) -> datetime:
        """The latest tick at or before ``when`` (aware)."""
        if self.interval:
            seconds = int(when.timestamp()) // self.interval * self.interval
            return datetime.fromtimestamp(seconds, UTC)
        assert self.cron is not None
        local = when.astimezone(self.schedule.zone).replace(tzinfo=None) + _STEP
        found = croniter(self.cron, local)
        while True:
            candidate = _from_local(found.get_prev(datetime), self.schedule)
            if candidate <= when:
                return candidate

    def tick_after(self, when: datetime) -> datetime:
        """The first tick strictly after ``when`` (aware)."""
        if self.interval:
            seconds = (int(when.timestamp()) // self.interval + 1) * self.interval
            return datetime.fromtimestamp(seconds, UTC)
        assert self.cron is not None
        found = croniter(self.cron, when.astimezone(self.schedule.zone).replace(tzinfo=None))
        while True:
            candidate = _from_local(found.get_next(datetime), self.schedule)
            if candidate > when:
                return candidate

    def is_open(self, tick: datetime) -> bool:
        """False when the schedule has market hours and the market is closed at ``tick``."""
        calendar = self.schedule.calendar
        return calendar is None or calendar.is_open(tick, self.schedule.zone)

    def due(self, now: datetime) -> datetime | None:
        """The tick to fire at ``now``: the latest one since the schedule was written, if any.

        Ticks missed while no scheduler ran coalesce into this one (as RQ's and Celery's
        beat do); a new or edited schedule never fires for a time before it was written.
        """
        tick = self.tick_at_or_before(now)
        return tick if tick > self.schedule.updated_at else None

    # ---- RQ's CronJob interface ---------------------------------------------------------
    def get_next_enqueue_time(self) -> datetime:
        """RQ's hook: the next tick after the last one fired (or after now)."""
        return self.tick_after(self.latest_enqueue_time or datetime.now(UTC))

    def should_run(self) -> bool:
        due = self.due(datetime.now(UTC))
        return due is not None and (self.latest_enqueue_time is None or due > self.latest_enqueue_time)
