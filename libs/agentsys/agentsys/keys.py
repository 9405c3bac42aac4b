"""Every Redis key, queue and channel name of the system, in one place.

Our keys and channels live under one prefix so that deployments (and tests) sharing a
Redis never see each other's flags, pending triggers or Pub/Sub traffic. RQ's own
``rq:`` keys are outside it; the agents' queues come from the registry (``agentsys.agents``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agentsys import agents as registry

AGENTS: Final = registry.NAMES
"""The agents of the pipeline, in order (``agentsys.agents``); each has a queue of the same name."""
CONTROL_QUEUE: Final = "control"
"""Queue for notes, recovery, sweeps and clean-up."""
LOW_SUFFIX: Final = ".low"
"""Suffix of a queue's low-priority twin, which workers list last."""
QUEUES: Final = (*(a.queue for a in registry.AGENTS), CONTROL_QUEUE)
"""Every normal-priority queue."""
WORKER_QUEUES: Final = (CONTROL_QUEUE, *(a.queue for a in reversed(registry.AGENTS)))
"""The order an all-agent worker takes work in. Control first: its jobs (ticks, notes,
sweeps) are short, and behind agent work they starved (the live profile in docs/pipeline.md:
a busy universe's agent queues are never all empty, so ticks waited a minute and notes behind
them). Then the agents downstream first, so under overload a worker finishes work in flight
(bangs, then EMAs) before it takes in new prices; queues stay bounded and bangs stay fresh."""


def low(queue: str) -> str:
    """Name of the low-priority twin of ``queue``."""
    return queue + LOW_SUFFIX


def worker_queue_order(queues: tuple[str, ...] | list[str]) -> list[str]:
    """Queues a worker listens on: the given ones first, then their low twins."""
    return [*queues, *(low(q) for q in queues)]


ALL_QUEUES: Final = worker_queue_order(QUEUES)
"""Every queue of the system, normal-priority ones first."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Names under one prefix; build one per settings object."""

    prefix: str

    def _k(self, *parts: object) -> str:
        return ":".join((self.prefix, *(str(p) for p in parts)))

    # runtime flags
    def agent_flag(self, agent: str) -> str:
        """Hash field store: '0' disables the agent, absent or '1' enables it."""
        return self._k("flag", "agent", agent)

    def symbol_flags(self) -> str:
        """Set of disabled symbols."""
        return self._k("flag", "symbols-disabled")

    # level-triggered shard jobs
    def pending(self, agent: str, shard: int) -> str:
        """Set NX before enqueuing agent's job for a shard; deleted by the job before it reads."""
        return self._k("pending", agent, shard)

    def shard_lock(self, agent: str, shard: int) -> str:
        return self._k("lock", agent, shard)

    # worker health and statistics
    def worker_stats(self, name: str) -> str:
        """Hash of a worker's counters: jobs done, failures, last job duration."""
        return self._k("worker", name, "stats")

    # cache-aside
    def history(self, symbol: str) -> str:
        return self._k("cache", "history", symbol)

    def history_version(self, symbol: str) -> str:
        """Bumped on new data so stale cache fills are never stored."""
        return self._k("cache", "history-version", symbol)

    def history_watched(self) -> str:
        """Set of the symbols whose history was ever asked for: only theirs is invalidated."""
        return self._k("cache", "history-watched")

    # scheduler
    def schedules(self) -> str:
        """Hash of named schedules (JSON values)."""
        return self._k("schedules")

    def scheduler_lock(self) -> str:
        return self._k("scheduler", "leader")

    def schedule_last(self, name: str) -> str:
        return self._k("scheduler", "last", name)

    # circuit breakers of price sources
    def breaker(self, source: str) -> str:
        return self._k("breaker", source)

    # Pub/Sub channels
    @property
    def channel_bangs(self) -> str:
        return self._k("ch", "bangs")

    @property
    def channel_updates(self) -> str:
        """Compact per-shard price and indicator updates."""
        return self._k("ch", "updates")

    @property
    def channel_tasks(self) -> str:
        return self._k("ch", "tasks")

    @property
    def channel_heartbeats(self) -> str:
        return self._k("ch", "heartbeats")

    def channels(self) -> dict[str, str]:
        """Kind name to channel, for relays."""
        return {
            "bang": self.channel_bangs,
            "update": self.channel_updates,
            "task": self.channel_tasks,
            "heartbeat": self.channel_heartbeats,
        }
