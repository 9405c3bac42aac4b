"""Cache-aside for symbol history: read Redis, else load from PostgreSQL and fill with a TTL.

One Redis hash per symbol (``Keys.history``) holds one field per query shape (from, to,
limit), so invalidating a symbol is one ``DEL`` whatever was asked. A per-symbol version
key (``Keys.history_version``) is bumped on every invalidation; a fill stores its answer
only if the version is still the one read *before* the database was queried, so an answer
computed from a snapshot older than the newest commit is never cached. Workers call
:func:`invalidate_history` after they commit new data for some symbols.

A live tick commits new data for every symbol each second, but few symbols are ever
looked at. A reader adds its symbol to a *watched* set before it reads the version, and
invalidation bumps only watched symbols, in one script call per chunk: a commit of 10,000
symbols nobody watches costs Redis 10,000 set lookups, not 20,000 writes. (Added before the
version is read, so an invalidation racing a fill always sees the symbol as watched.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from redis import Redis

from agentsys import defaults
from agentsys.keys import Keys

MAX_QUERIES_PER_SYMBOL = 256
"""Distinct query shapes cached per symbol at most; more are answered but not stored."""

_FILL = """
local v = redis.call('GET', KEYS[2]) or ''
if v ~= ARGV[1] then return 0 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""
# The TTL is set by the first fill only: no entry of a symbol outlives it, however many
# query shapes are added later.


def query_field(start: datetime | None, end: datetime | None, limit: int) -> str:
    """The hash field of one query shape."""
    return f"{start.isoformat() if start else ''}|{end.isoformat() if end else ''}|{limit}"


def cached_history(
    redis: Redis,
    k: Keys,
    symbol: str,
    field: str,
    load: Callable[[], bytes | None],
    *,
    ttl: int = defaults.HISTORY_CACHE_TTL,
) -> tuple[bytes | None, bool]:
    """``(payload, hit)``: the cached answer, or ``load()``'s (stored when still current).

    A hit costs one Redis round trip and never touches PostgreSQL. ``load`` returns None
    for "no such symbol", which is not cached.
    """
    with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(k.history_watched(), symbol)
        pipe.hget(k.history(symbol), field)
        pipe.get(k.history_version(symbol))
        _, found, version = pipe.execute()
    if found is not None:
        return found, True
    payload = load()
    if payload is not None:
        redis.eval(_FILL, 2, k.history(symbol), k.history_version(symbol),
                   (version or b"").decode(), field, payload, MAX_QUERIES_PER_SYMBOL, ttl)
    return payload, False


_INVALIDATE = """
local n = 0
local version, history = ARGV[1], ARGV[2]
for i = 3, #ARGV do
    if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
        redis.call('INCR', version .. ARGV[i])
        redis.call('DEL', history .. ARGV[i])
        n = n + 1
    end
end
return n
"""
# One script call per chunk, atomic per chunk. Key names of watched symbols are built in
# the script from the two prefixes (one Redis, no cluster slots to declare them for).
INVALIDATE_CHUNK = 5000
"""Symbols per invalidation script call (bounds how long one call holds Redis)."""


def invalidate_history(redis: Redis, k: Keys, symbols: Iterable[str]) -> int:
    """Forget cached history of these symbols; call after committing new data for them.
    Returns how many were watched (and so bumped)."""
    names = list(symbols)
    script = redis.register_script(_INVALIDATE)
    version, history = k.history_version(""), k.history("")
    bumped = 0
    for at in range(0, len(names), INVALIDATE_CHUNK):
        bumped += int(script(keys=[k.history_watched()], args=[version, history, *names[at:at + INVALIDATE_CHUNK]]))
    return bumped
