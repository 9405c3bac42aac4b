from __future__ import annotations

import threading

import pytest

from agentsys import defaults
from agentsys.keys import Keys
from agentsys.sources import breaker

T = 1_800_000_000.0
SRC = "http"


def fail(stack, n: int = 1, *, now: float = T, **kw) -> str:
    state = ""
    for _ in range(n):
        state = breaker.record_failure(stack.redis, stack.keys, SRC, now=now, **kw)
    return state


def test_closed_by_default_and_state_reads_as_the_interface_says(stack):
    assert breaker.state(stack.redis, stack.keys, SRC) == {
        "source": SRC, "state": "closed", "failures": 0, "opened_at": None, "retry_at": None}
    assert breaker.allow(stack.redis, stack.keys, SRC, now=T)
    assert not stack.redis.exists(stack.keys.breaker(SRC))  # allowing writes nothing


def test_opens_after_threshold_consecutive_failures_and_a_success_resets_the_count(stack):
    assert fail(stack, 2, threshold=3) == "closed"
    assert breaker.record_success(stack.redis, stack.keys, SRC) == "closed"
    assert breaker.state(stack.redis, stack.keys, SRC)["failures"] == 0
    assert fail(stack, 2, threshold=3) == "closed"
    assert breaker.allow(stack.redis, stack.keys, SRC, now=T)
    assert fail(stack, 1, threshold=3, cooldown_s=30) == "open"
    assert breaker.state(stack.redis, stack.keys, SRC) == {
        "source": SRC, "state": "open", "failures": 3, "opened_at": T, "retry_at": T + 30}
    raw = stack.redis.hgetall(stack.keys.breaker(SRC))
    assert raw[b"state"] == b"open" and raw[b"failures"] == b"3" and float(raw[b"opened_at"]) == T


def test_open_refuses_until_the_cooldown_then_lets_one_probe_through(stack):
    fail(stack, 5)
    r, k = stack.redis, stack.keys
    assert not breaker.allow(r, k, SRC, now=T + defaults.BREAKER_COOLDOWN_S - 0.001)
    assert breaker.state(r, k, SRC)["state"] == "open"
    assert breaker.allow(r, k, SRC, now=T + defaults.BREAKER_COOLDOWN_S, probe_ttl_s=10)
    assert breaker.state(r, k, SRC)["state"] == "half_open"
    assert not breaker.allow(r, k, SRC, now=T + defaults.BREAKER_COOLDOWN_S + 1)  # the probe is in flight
    # a probe that never reports (its worker died) frees the slot when its lease ends
    assert not breaker.allow(r, k, SRC, now=T + defaults.BREAKER_COOLDOWN_S + 9.999)
    assert breaker.allow(r, k, SRC, now=T + defaults.BREAKER_COOLDOWN_S + 10)


def test_a_successful_probe_closes_it(stack):
    fail(stack, 5)
    r, k = stack.redis, stack.keys
    assert breaker.allow(r, k, SRC, now=T + 60)
    assert breaker.record_success(r, k, SRC) == "closed"
    assert breaker.state(r, k, SRC) == {"source": SRC, "state": "closed", "failures": 0, "opened_at": T,
                                        "retry_at": None}
    assert breaker.allow(r, k, SRC, now=T + 60) and breaker.allow(r, k, SRC, now=T + 60)


def test_a_failed_probe_opens_it_again_for_another_cooldown(stack):
    fail(stack, 5)
    r, k = stack.redis, stack.keys
    assert breaker.allow(r, k, SRC, now=T + 60)
    assert breaker.record_failure(r, k, SRC, now=T + 61, cooldown_s=30) == "open"  # one failure is enough
    found = breaker.state(r, k, SRC)
    assert (found["state"], found["opened_at"], found["retry_at"], found["failures"]) == ("open", T + 61, T + 91, 6)
    assert not breaker.allow(r, k, SRC, now=T + 90)
    assert breaker.allow(r, k, SRC, now=T + 91)


def test_outcomes_while_open_do_not_shorten_the_cooldown(stack):
    fail(stack, 5, cooldown_s=30)
    r, k = stack.redis, stack.keys
    assert breaker.record_success(r, k, SRC) == "open"  # a call that began before it opened
    assert breaker.record_failure(r, k, SRC, now=T + 5, cooldown_s=1) == "open"
    assert breaker.state(r, k, SRC)["retry_at"] == T + 30
    assert breaker.record_failure(r, k, SRC, now=T + 5, cooldown_s=1, force=True) == "open"
    assert breaker.state(r, k, SRC)["retry_at"] == T + 30  # force only pushes it later
    assert breaker.record_failure(r, k, SRC, now=T + 5, cooldown_s=100, force=True) == "open"
    assert breaker.state(r, k, SRC)["retry_at"] == T + 105
    assert breaker.state(r, k, SRC)["failures"] == 8


def test_force_opens_at_once_for_as_long_as_asked(stack):
    assert breaker.record_failure(stack.redis, stack.keys, SRC, now=T, cooldown_s=120, force=True) == "open"
    assert breaker.state(stack.redis, stack.keys, SRC)["retry_at"] == T + 120
    assert not breaker.allow(stack.redis, stack.keys, SRC, now=T + 119)


def test_only_one_of_many_concurrent_callers_gets_the_probe(stack):
    fail(stack, 5)
    start = threading.Barrier(16)
    granted: list[bool] = []

    def caller():
        start.wait(timeout=10)
        granted.append(breaker.allow(stack.redis, stack.keys, SRC, now=T + 100))

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(granted) == 16 and granted.count(True) == 1


def test_sources_and_prefixes_are_independent(stack):
    fail(stack, 5)
    assert breaker.allow(stack.redis, stack.keys, "synthetic", now=T)
    other = Keys(stack.prefix + "-other")
    assert breaker.allow(stack.redis, other, SRC, now=T)
    assert not breaker.allow(stack.redis, stack.keys, SRC, now=T)
    breaker.reset(stack.redis, stack.keys, SRC)
    assert breaker.state(stack.redis, stack.keys, SRC)["state"] == "closed"


def test_the_orchestrator_reads_the_same_state(stack):
    from agentsys.status import breakers

    fail(stack, 5)
    (row,) = breakers(stack.redis, stack.keys, (SRC,))
    assert (row["state"], row["failures"], row["opened_at"]) == ("open", 5, T)


def test_bad_arguments(stack):
    with pytest.raises(ValueError):
        breaker.record_failure(stack.redis, stack.keys, SRC, threshold=0)
    with pytest.raises(ValueError):
        breaker.record_failure(stack.redis, stack.keys, SRC, cooldown_s=-1)
