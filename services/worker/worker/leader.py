"""A Redis lease: one holder at a time, lost by a holder that stops renewing it.

``SET key token NX PX ttl`` takes it; renewing and releasing compare the token first
(a Lua script), so a holder whose lease already expired can never extend or delete the
lease a successor took meanwhile.
"""

from __future__ import annotations

import time

from redis import Redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaderLock:
    """The lease at ``key``, held under ``token`` (unique per process)."""

    def __init__(self, redis: Redis, key: str, token: str, *, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.token = token
        self.ttl_ms = ttl_ms
        self._valid_until = 0.0
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        """True while our last successful take or renewal has not run out (by our own clock)."""
        return time.monotonic() < self._valid_until

    def _mark(self, started: float) -> None:
        # Count from before the command was sent: Redis started the expiry no earlier.
        self._valid_until = started + self.ttl_ms / 1000

    def acquire(self) -> bool:
        """Renew the lease if it is ours, else take it if free; True while we hold it."""
        started = time.monotonic()
        if self._valid_until and self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
            self._mark(started)
            return True
        if self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms) or (
                not self._valid_until and self._renew(keys=[self.key], args=[self.token, self.ttl_ms])):
            # (the second look: ours although we did not know, e.g. a renewal whose answer was lost)
            self._mark(started)
            return True
        self._valid_until = 0.0
        return False

    def release(self) -> bool:
        """Give the lease up if it is still ours (a standby takes over at its next look)."""
        self._valid_until = 0.0
        return bool(self._release(keys=[self.key], args=[self.token]))

    def holder(self) -> str | None:
        value = self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
