"""The agent registry: every agent of the pipeline, and everything the system needs to know of it.

Every list of agents elsewhere (queues, job paths, trigger tables, lock classes, breakers,
lag queries, the API's and the task parameters' choices, the job modules workers preload,
process mode's worker layout) derives from :data:`AGENTS`, so adding an agent is one entry
here plus its job module. ``agentsys-registry --json`` prints it for workers written in
other languages, which check their constants against it.

This module imports nothing else of the library: ``keys`` builds its queue names from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

_BEHIND = """
        SELECT DISTINCT s.shard FROM symbols s
        JOIN progress i ON i.agent = '{upstream}' AND i.symbol = s.symbol
        LEFT JOIN progress o ON o.agent = '{agent}' AND o.symbol = s.symbol
        WHERE (o.last_ts IS NULL OR i.last_ts > o.last_ts) {{only}}
    """
"""Shards where an agent's progress is behind its upstream's (``{only}``: an optional symbol filter)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """One agent: a level-triggered shard job on its own queue."""

    name: str
    """Also its flag, its pending keys and its rows of ``progress``."""
    queue: str
    func: str
    """Dotted path of its job function, ``run(shard)``: callers enqueue it by name, never import it."""
    lock_class: int
    """First key of its per-shard advisory lock (``pg_advisory_xact_lock(lock_class, shard)``)."""
    upstream: str | None = None
    """The agent whose progress is its input; None when its input comes from outside (a price source)."""
    breaker_sources: tuple[str, ...] = ()
    """Price sources behind a circuit breaker that its jobs call."""

    @property
    def module(self) -> str:
        """The job module (what workers preload and process mode's reloader watches)."""
        return self.func.rpartition(".")[0]

    @property
    def lag_query(self) -> str | None:
        """SQL of the shards it lags its upstream in, or None: every shard may have new input."""
        return None if self.upstream is None else _BEHIND.format(upstream=self.upstream, agent=self.name)


AGENTS: Final = (
    Agent(name="price", queue="price", func="worker.agents.price.run", lock_class=1,
          breaker_sources=("synthetic", "http")),
    Agent(name="indicator", queue="indicator", func="worker.agents.indicator.run", lock_class=2, upstream="price"),
    Agent(name="bang", queue="bang", func="worker.agents.bang.run", lock_class=3, upstream="indicator"),
)
"""The agents in pipeline order (each one's upstream comes before it); lock order follows it too."""

NAMES: Final = tuple(a.name for a in AGENTS)
"""The agent names, in pipeline order."""
BY_NAME: Final = {a.name: a for a in AGENTS}

if TYPE_CHECKING:
    Name = str
else:
    Name = Literal[NAMES]
"""An agent name as a type: pydantic and FastAPI offer (and check) the registry's names as an enum."""


def get(name: str) -> Agent:
    """The agent called ``name``; ValueError naming the choices otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; choose from {', '.join(NAMES)}") from None


def downstream(name: str) -> tuple[str, ...]:
    """The agents whose input ``name`` writes (those its commits trigger); none after the last."""
    return tuple(a.name for a in AGENTS if a.upstream == name)


def first() -> Agent:
    """The agent that takes prices in (no upstream): composite tasks' ingest runs on its queue."""
    return next(a for a in AGENTS if a.upstream is None)


def export() -> dict[str, Any]:
    """The registry as JSON-able data (the shape ``agentsys-registry --json`` prints), with the
    queue names that come from it."""
    from agentsys import keys  # which imports this module

    return {
        "agents": [{
            "name": a.name, "queue": a.queue, "low_queue": keys.low(a.queue), "func": a.func, "module": a.module,
            "lock_class": a.lock_class, "upstream": a.upstream, "downstream": list(downstream(a.name)),
            "breaker_sources": list(a.breaker_sources), "lag_query": a.lag_query,
        } for a in AGENTS],
        "control_queue": keys.CONTROL_QUEUE,
        "worker_queues": list(keys.WORKER_QUEUES),
    }


def main(argv: list[str] | None = None) -> int:
    """``agentsys-registry [--json]``: the agents, one line each, or the whole registry as JSON."""
    parser = argparse.ArgumentParser(prog="agentsys-registry", description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="the whole registry as one JSON document")
    args = parser.parse_args(argv)
    if args.json:
        json.dump(export(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for a in AGENTS:
        sys.stdout.write(f"{a.name:<10} queue={a.queue:<10} lock={a.lock_class} upstream={a.upstream or '-':<10}"
                         f" {a.func}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
