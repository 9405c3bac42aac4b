"""Cache-aside for symbol history: read Redis, else load from PostgreSQL and fill with a TTL.

One Redis hash per symbol (``Keys.history``) holds one field per query shape (from, to,
limit), so invalidating a symbol is one ``DEL`` whatever was asked. A per-symbol version
key (``Keys.history_version``) is bumped on every invalidation; a fill stores its answer
only if the version is still the one read *before* the database was queried, so an answer
computed from a snapshot older than the newest commit is never cached. Workers call
:func:`invalidate_history` after they commit new data for some symbols.
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
        pipe.hget(k.history(symbol), field)
        pipe.get(k.history_version(symbol))
        found, version = pipe.execute()
    if found is not None:
        return found, True
    payload = load()
    if payload is not None:
        redis.eval(_FILL, 2, k.history(symbol), k.history_version(symbol),
                   (version or b"").decode(), field, payload, MAX_QUERIES_PER_SYMBOL, ttl)
    return payload, False


_INVALIDATE = """
for i = 1, #KEYS, 2 do
    redis.call('INCR', KEYS[i])
    redis.call('DEL', KEYS[i + 1])
end
return #KEYS / 2
"""
# One script call per chunk instead of two commands per symbol: a 10,000-symbol commit
# invalidates in a few milliseconds (a pipeline of 20,000 commands cost most of a second
# of client-side packing). Atomic per chunk, like the MULTI it replaces.
INVALIDATE_CHUNK = 2000
"""Symbols per invalidation script call (bounds how long one call holds Redis)."""


def invalidate_history(redis: Redis, k: Keys, symbols: Iterable[str]) -> None:
    """Forget cached history of these symbols; call after committing new data for them."""
    names = list(symbols)
    script = redis.register_script(_INVALIDATE)
    for at in range(0, len(names), INVALIDATE_CHUNK):
        chunk = names[at:at + INVALIDATE_CHUNK]
        script(keys=[key for symbol in chunk for key in (k.history_version(symbol), k.history(symbol))])
