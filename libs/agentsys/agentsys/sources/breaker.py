"""A circuit breaker per price source, kept in Redis so that every worker shares it.

When a source fails ``threshold`` times in a row, all workers stop calling it for a
cooldown instead of each paying its timeouts and retries (and, for a rate-limited API,
making a ban worse). After the cooldown one caller at a time is let through as a probe:
its success closes the breaker, its failure opens it for another cooldown.

State is the hash ``Keys.breaker(source)`` (``docs/interfaces.md``):

- ``state``: ``closed`` | ``open`` | ``half_open`` (absent means ``closed``);
- ``failures``: consecutive failures (reset by a success);
- ``opened_at``: epoch seconds when it last opened;
- ``retry_at``: epoch seconds when an open breaker lets a probe through (``opened_at`` +
  cooldown, or later when the source said so, e.g. a ``Retry-After``);
- ``probe_until``: while ``half_open``, the lease of the probe in flight. A probe that
  never reports (its worker was killed) frees the slot when the lease ends.

Every transition is one Lua script, so concurrent workers cannot both take the probe
slot or lose a failure count. Times come from the caller (``now=``, default
``time.time()``), so tests move the clock instead of sleeping; workers' clocks are
assumed to agree to within a small part of the cooldown.

Outcomes: a success in ``open`` state (a call that began before the breaker opened) is
ignored, so the cooldown stands; a failure in ``open`` state is counted and can only push
``retry_at`` later (``force``).
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from agentsys import defaults
from agentsys.keys import Keys

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return 1 end
local now = tonumber(ARGV[1])
if state == 'open' then
  if now < tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0') then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', ARGV[2])
  return 2
end
if now < tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', ARGV[2])
return 2
"""

_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' then return 'open' end
if state == 'closed' and redis.call('HGET', KEYS[1], 'failures') == '0' then return 'closed' end
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0')
redis.call('HDEL', KEYS[1], 'probe_until', 'retry_at')
return 'closed'
"""

_FAILURE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local force = ARGV[4] == '1'
if state == 'open' then
  if force and tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0') then
    redis.call('HSET', KEYS[1], 'retry_at', ARGV[3])
  end
  return 'open'
end
if state == 'half_open' or force or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'retry_at', ARGV[3])
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 'open'
end
redis.call('HSET', KEYS[1], 'state', 'closed')
return 'closed'
"""


def allow(redis: Redis, keys: Keys, source: str, *, now: float | None = None,
          probe_ttl_s: float = defaults.BREAKER_PROBE_TTL_S) -> bool:
    """May the caller call the source now? True when closed, or when it gets the half-open probe slot.

    A caller that got True must report the outcome with ``record_success`` or ``record_failure``.
    """
    now = time.time() if now is None else now
    granted = redis.register_script(_ALLOW)(keys=[keys.breaker(source)], args=[repr(now), repr(now + probe_ttl_s)])
    return bool(granted)


def record_success(redis: Redis, keys: Keys, source: str) -> str:
    """The source answered well: close the breaker (unless it is open) and reset the failure count."""
    return _text(redis.register_script(_SUCCESS)(keys=[keys.breaker(source)]))


def record_failure(redis: Redis, keys: Keys, source: str, *, now: float | None = None,
                   threshold: int = defaults.BREAKER_FAILURES, cooldown_s: float = defaults.BREAKER_COOLDOWN_S, force: bool = False) -> str:
    """The source failed: count it, and open the breaker at ``threshold`` in a row or after a failed probe.

    ``force`` opens it at once (the source said "stop", e.g. HTTP 418 or a long
    ``Retry-After``); ``cooldown_s`` is then how long the source asked us to wait.
    Returns the new state.
    """
    if threshold < 1 or cooldown_s < 0:
        raise ValueError("threshold must be at least 1 and cooldown_s not negative")
    now = time.time() if now is None else now
    args = [repr(now), str(threshold), repr(now + cooldown_s), "1" if force else "0"]
    return _text(redis.register_script(_FAILURE)(keys=[keys.breaker(source)], args=args))


def state(redis: Redis, keys: Keys, source: str) -> dict[str, Any]:
    """The breaker as stored: source, state, failures, opened_at, retry_at (epoch seconds or None)."""
    raw = {_text(k): _text(v) for k, v in redis.hgetall(keys.breaker(source)).items()}
    return {"source": source, "state": raw.get("state", CLOSED), "failures": int(raw.get("failures") or 0),
            "opened_at": _float(raw.get("opened_at")), "retry_at": _float(raw.get("retry_at"))}


def reset(redis: Redis, keys: Keys, source: str) -> None:
    """Forget the breaker's state (closed, no failures): an operator's override."""
    redis.delete(keys.breaker(source))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float | None:
    return float(value) if value else None
