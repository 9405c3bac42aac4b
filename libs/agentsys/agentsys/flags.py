"""Runtime flags: switch an agent (or a symbol) off and on without restarting anything.

Workers read the flag at job start, so a change takes effect on the next job.
"""

from __future__ import annotations

from redis import Redis

from agentsys.keys import AGENTS, Keys


def is_enabled(redis: Redis, k: Keys, agent: str) -> bool:
    return redis.get(k.agent_flag(agent)) != b"0"


def set_enabled(redis: Redis, k: Keys, agent: str, enabled: bool) -> None:
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; choose from {', '.join(AGENTS)}")
    redis.set(k.agent_flag(agent), b"1" if enabled else b"0")


def agent_flags(redis: Redis, k: Keys) -> dict[str, bool]:
    values = redis.mget([k.agent_flag(a) for a in AGENTS])
    return {agent: value != b"0" for agent, value in zip(AGENTS, values, strict=True)}


def disabled_symbols(redis: Redis, k: Keys) -> set[str]:
    return {s.decode() for s in redis.smembers(k.symbol_flags())}  # type: ignore[union-attr]


def set_symbol_enabled(redis: Redis, k: Keys, symbol: str, enabled: bool) -> None:
    if enabled:
        redis.srem(k.symbol_flags(), symbol)
    else:
        redis.sadd(k.symbol_flags(), symbol)
