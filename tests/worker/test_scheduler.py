"""The scheduler: tick grid and time zones, JSON jobs, exactly-once ticks, leader failover."""

from __future__ import annotations

import json
import os
import signal
import time
import zlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from agentsys import tasks
from agentsys.schedules import MarketHours, Schedule, ScheduleSpec, get_schedule, put_schedule
from tests.support import procs, wait
from tests.support.ticks import tick_seconds
from worker.schedule_timing import ScheduleTiming
from worker.scheduler import AgentScheduler, tick_task_id
from worker.settings import SchedulerSettings

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def _timing(**spec) -> ScheduleTiming:
    spec.setdefault("type", "note")
    spec.setdefault("params", {"description": "tick"})
    return ScheduleTiming(Schedule(name="s", updated_at=LONG_AGO, **spec))


def _put(stack, name: str, *, updated_at: datetime = LONG_AGO, **spec) -> Schedule:
    spec.setdefault("type", "note")
    spec.setdefault("params", {"description": name})
    schedule, _ = put_schedule(stack.redis, stack.keys, name, ScheduleSpec(**spec), now=updated_at)
    return schedule


def _scheduler(stack, name: str = "s1", **settings) -> AgentScheduler:
    values = {"scheduler_lock_ttl_ms": 2000, "scheduler_poll": 0.1, **settings}
    return AgentScheduler(stack.redis, SchedulerSettings(**values), name=name)


def _task_ids(stack, task_type: str = "note") -> list[str]:
    with stack.db() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM task_runs WHERE type = %s", (task_type,))]


# ---- timing -----------------------------------------------------------------------------

def test_interval_ticks_sit_on_the_epoch_grid():
    timing = _timing(interval_s=300)
    now = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)
    assert timing.tick_at_or_before(now) == datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
    assert timing.tick_after(now) == datetime(2026, 3, 2, 10, 10, tzinfo=UTC)
    assert timing.tick_at_or_before(datetime(2026, 3, 2, 10, 10, tzinfo=UTC)) == datetime(2026, 3, 2, 10, 10, tzinfo=UTC)


def test_cron_ticks_are_read_in_the_schedule_time_zone_across_daylight_saving():
    paris = _timing(cron="0 9 * * *", timezone="Europe/Paris")
    assert paris.tick_after(datetime(2026, 1, 10, tzinfo=UTC)) == datetime(2026, 1, 10, 8, tzinfo=UTC)
    assert paris.tick_after(datetime(2026, 7, 10, tzinfo=UTC)) == datetime(2026, 7, 10, 7, tzinfo=UTC)
    # 02:30 does not exist in New York on 2026-03-08: it runs when the clock has jumped (03:30 EDT)
    spring = _timing(cron="30 2 * * *", timezone="America/New_York")
    assert spring.tick_after(datetime(2026, 3, 8, 5, tzinfo=UTC)) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # 01:30 happens twice on 2026-11-01: it runs once, at the first
    autumn = _timing(cron="30 1 * * *", timezone="America/New_York")
    first = autumn.tick_after(datetime(2026, 11, 1, 4, tzinfo=UTC))
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert autumn.tick_after(first) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    assert autumn.tick_at_or_before(datetime(2026, 11, 1, 6, 45, tzinfo=UTC)) == first


def test_market_hours_skip_ticks_outside_them():
    timing = _timing(interval_s=3600, timezone="America/New_York",
                     calendar=MarketHours(days=[0, 1, 2, 3, 4], open="09:30", close="16:00"))
    ny = ZoneInfo("America/New_York")
    assert timing.is_open(datetime(2026, 3, 4, 10, 0, tzinfo=ny))        # Wednesday 10:00
    assert not timing.is_open(datetime(2026, 3, 4, 9, 0, tzinfo=ny))     # before the open
    assert not timing.is_open(datetime(2026, 3, 4, 16, 0, tzinfo=ny))    # close is exclusive
    assert not timing.is_open(datetime(2026, 3, 7, 12, 0, tzinfo=ny))    # Saturday


# ---- one scheduler, driven pass by pass --------------------------------------------------

def test_each_tick_is_one_json_job_and_one_task_run(stack):
    _put(stack, "every-minute", interval_s=60, priority="high")
    scheduler = _scheduler(stack)
    now = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    try:
        assert scheduler.run_once(now) == [("every-minute", datetime(2026, 3, 2, 10, 0, tzinfo=UTC))]
        assert scheduler.run_once(now + timedelta(seconds=20)) == []            # same tick: nothing
        assert len(scheduler.run_once(now + timedelta(seconds=60))) == 1        # next tick
        ids = _task_ids(stack)
        assert sorted(ids) == sorted(tick_task_id(stack.prefix, "every-minute", t) for t in (
            datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 2, 10, 1, tzinfo=UTC)))
        raw = zlib.decompress(stack.redis.hget(f"rq:job:{ids[0]}", "data"))
        assert json.loads(raw)  # JSON, never pickle (rq cron's own enqueue pickles)
        job = Job.fetch(ids[0], connection=stack.redis, serializer=JSONSerializer)
        assert job.func_name == "worker.jobs.note.run" and job.kwargs["params"] == {"description": "every-minute"}
        assert Queue("control", connection=stack.redis).job_ids[0] in ids  # high priority: at the front
    finally:
        scheduler.close()


def test_changes_are_picked_up_without_a_restart_and_new_schedules_never_fire_for_the_past(stack):
    scheduler = _scheduler(stack)
    now = datetime.now(UTC)
    try:
        assert scheduler.run_once(now) == []
        _put(stack, "fresh", interval_s=1, updated_at=now)
        assert scheduler.run_once(now) == []                              # written now: no past tick
        assert [n for n, _ in scheduler.run_once(now + timedelta(seconds=1))] == ["fresh"]
        _put(stack, "fresh", interval_s=1, enabled=False, updated_at=now + timedelta(seconds=1))
        assert scheduler.run_once(now + timedelta(seconds=3)) == []        # disabled
        _put(stack, "fresh", interval_s=1, updated_at=now + timedelta(seconds=3))
        assert [n for n, _ in scheduler.run_once(now + timedelta(seconds=5))] == ["fresh"]
    finally:
        scheduler.close()


def test_a_tick_claimed_but_never_submitted_is_submitted_once_by_the_next_leader(stack):
    _put(stack, "m", interval_s=60)
    now = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    tick = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    stack.redis.set(stack.keys.schedule_last("m"), int(tick.timestamp()))  # a leader died right after claiming
    scheduler = _scheduler(stack)
    try:
        scheduler.run_once(now)
        scheduler.run_once(now + timedelta(seconds=1))
        assert _task_ids(stack) == [tick_task_id(stack.prefix, "m", tick)]
    finally:
        scheduler.close()
    again = _scheduler(stack, "s2")  # and a later leader finds it submitted
    try:
        again.run_once(now + timedelta(seconds=2))
        assert len(_task_ids(stack)) == 1
    finally:
        again.close()


def test_only_the_lease_holder_fires_and_a_deposed_leader_cannot(stack):
    _put(stack, "m", interval_s=60)
    first, second = _scheduler(stack, "a"), _scheduler(stack, "b")
    now = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    try:
        assert len(first.run_once(now)) == 1
        assert second.run_once(now + timedelta(seconds=60)) == [] and not second.leading
        stack.redis.set(stack.keys.scheduler_lock(), second.lease.token, px=2000)  # the lease passes to b
        assert first.run_once(now + timedelta(seconds=60)) == [] and not first.leading
        assert len(second.run_once(now + timedelta(seconds=60))) == 1
        assert len(_task_ids(stack)) == 2
    finally:
        first.close()
        second.close()
    assert stack.redis.get(stack.keys.scheduler_lock()) is None  # released on the way out


def test_market_closed_ticks_are_skipped(stack):
    _put(stack, "open-hours", interval_s=3600, timezone="America/New_York",
         calendar=MarketHours(days=[0, 1, 2, 3, 4], open="09:30", close="16:00"))
    scheduler = _scheduler(stack)
    ny = ZoneInfo("America/New_York")
    try:
        assert scheduler.run_once(datetime(2026, 3, 7, 12, 5, tzinfo=ny)) == []   # Saturday
        assert len(scheduler.run_once(datetime(2026, 3, 9, 12, 5, tzinfo=ny))) == 1  # Monday noon
        assert len(_task_ids(stack)) == 1
    finally:
        scheduler.close()


def test_defaults_are_installed_once_and_a_users_change_is_kept(stack):
    scheduler = _scheduler(stack, price_interval_s=7)
    try:
        assert sorted(scheduler.install_defaults()) == ["daily-cleanup", "recovery-sweep", "universe-tick"]
        tick = get_schedule(stack.redis, stack.keys, "universe-tick")
        assert tick.type == "run_agent" and tick.params["agent"] == "price" and tick.interval_s == 7
        sweep = get_schedule(stack.redis, stack.keys, "recovery-sweep")
        assert sweep.type == "recover" and sweep.interval_s == 120
        cleanup = get_schedule(stack.redis, stack.keys, "daily-cleanup")
        assert cleanup.type == "cleanup" and cleanup.cron == "30 3 * * *"
        _put(stack, "universe-tick", type="run_agent", params={"agent": "price"}, interval_s=7, enabled=False)
        assert scheduler.install_defaults() == []
        assert get_schedule(stack.redis, stack.keys, "universe-tick").enabled is False
    finally:
        scheduler.close()


def test_due_retries_are_moved_back_to_their_queue(stack):
    queue = tasks.queue(stack.redis, "indicator")
    job = queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "worker.agents.indicator.run", args=(0,))
    assert job.id not in queue.job_ids
    scheduler = _scheduler(stack)
    try:
        scheduler.run_once()
        assert job.id in queue.job_ids
    finally:
        scheduler.close()


# ---- real processes ----------------------------------------------------------------------

def _scheduler_proc(stack, name: str, **env):
    settings = {"SCHEDULER_LOCK_TTL_MS": "2000", "SCHEDULER_POLL": "0.2", **env}
    return procs.agent_scheduler(stack.env, stack.tmp / f"{name}.log", name=name, defaults=False, **settings)


def test_two_schedulers_fire_each_tick_once_and_the_standby_takes_over_a_killed_leader(stack):
    start = datetime.now(UTC)
    _put(stack, "each-second", interval_s=1, updated_at=start)
    one, two = _scheduler_proc(stack, "one"), _scheduler_proc(stack, "two")
    procs_by_name = {"one": one, "two": two}
    try:
        holder = wait.until(lambda: stack.redis.get(stack.keys.scheduler_lock()), what="a leader")
        leader = holder.decode().split("/")[0]
        standby = "two" if leader == "one" else "one"
        wait.until(lambda: len(_task_ids(stack)) >= 3, timeout=15, what="three ticks")
        os.kill(procs_by_name[leader].pid, signal.SIGKILL)
        killed = time.monotonic()
        procs_by_name[leader].wait(10)
        wait.until(lambda: (stack.redis.get(stack.keys.scheduler_lock()) or b"").decode().startswith(standby + "/"),
                   timeout=10, interval=0.02, what="the standby to take the lease")
        takeover = time.monotonic() - killed
        assert takeover <= 2.0 + 0.2 + 0.5, f"takeover took {takeover:.2f}s for a 2 s lease"
        before = len(_task_ids(stack))
        wait.until(lambda: len(_task_ids(stack)) >= before + 2, timeout=15, what="ticks from the new leader")
    finally:
        for proc in (one, two):
            procs.stop(proc)
    ids = _task_ids(stack)
    assert len(ids) == len(set(ids))
    # every id is the derived id of one tick on the 1 s grid, and no tick was fired twice
    first, last = int(start.timestamp()), int(datetime.now(UTC).timestamp())
    fired = tick_seconds(stack.prefix, "each-second", ids, first, last)
    assert len(fired) == len(set(fired)) and len(fired) >= 5
    gaps = [b - a for a, b in zip(fired, fired[1:], strict=False)]
    # ticks due while the lease was unheld coalesce into one: at most the lease's life is skipped
    assert max(gaps) <= 4, gaps
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM task_runs WHERE type = 'note' AND state <> 'queued'").fetchone()[0] == 0
