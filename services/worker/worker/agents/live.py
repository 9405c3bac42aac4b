"""The live tick fused: a caught-up symbol's new bars go through price, EMAs and bangs in one job.

Run separately, a live tick costs three jobs, three transactions and two reads of what
the previous job just wrote, per shard and second: ten times a backfilled tick (the
live profile in docs/pipeline.md). A symbol whose indicator and bang progress are at
its price progress needs neither read: its new prices are in the price job's hands and
the carry is in the progress it read. So the price job, holding all three shard locks,
advances the EMAs and the state machine of those symbols in its own transaction, with
the indicator and bang agents' own code. Every other symbol (catching up, replayed, a
lock busy, an agent disabled) goes the separate way: the price job triggers downstream.

The result is the same as the three jobs' (one transaction instead of three, in lock
order price, indicator, bang); tests/worker/test_live_fused.py checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from agentsys import agents, flags, locks
from worker.agents import shard as shards
from worker.agents import steps
from worker.context import JobContext

PRICE = agents.first().name
FUSED = agents.NAMES[1:]
"""The agents a live tick runs inside the price job (the registry's after price), in lock order."""


def may_fuse(ctx: JobContext, conn: psycopg.Connection, shard: int) -> bool:
    """The downstream agents are enabled and their shard locks free (taken now, held to commit).

    Only tried, never waited for: a catch-up run holding one keeps it, and this tick's
    symbols go the separate way.
    """
    if not all(flags.is_enabled(ctx.redis, ctx.keys, agent) for agent in FUSED):
        return False
    return all(locks.try_lock_shard(conn, agent, shard) for agent in FUSED)


def caught_up(loaded: shards.Loaded) -> npt.NDArray[np.bool_]:
    """Per symbol: the indicator and bang progress are where the price progress is."""
    marks = [loaded.states[a].progress for a in (PRICE, *FUSED)]
    return np.array([len({p[0] for p in mark}) == 1 for mark in zip(*marks, strict=True)], dtype=bool)


@dataclass(frozen=True, slots=True)
class Fused:
    """The fused symbols' indicator and bang results, and the shard's bang watermark."""

    indicator: steps.Emas
    bang: steps.States
    covered_us: int | None


def advance(conn: psycopg.Connection, loaded: shards.Loaded, fuse: npt.NDArray[np.bool_],
            index: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64]) -> Fused:
    """Run the indicator and bang agents' steps over the rows of the ``fuse`` symbols, in the
    caller's transaction (rows sorted by symbol index, then ts; prices stored already)."""
    rows = fuse[index]
    picked = np.flatnonzero(fuse)
    position = np.cumsum(fuse) - 1  # shard index -> index among the fused
    sub_index = position[index[rows]]
    sub_ts, sub_price = ts[rows], price[rows]
    states = {agent: _subset(loaded.states[agent], picked) for agent in FUSED}
    indicator, bang = FUSED
    ind = steps.advance_emas(conn, states[indicator], sub_index, sub_ts, sub_price)
    bng = steps.advance_states(conn, states[bang], sub_index, sub_ts, sub_price, ind.emas, ind.codes)
    last = np.cumsum(np.bincount(sub_index, minlength=len(picked))) - 1  # each fused symbol has rows
    return Fused(ind, bng, steps.covered(loaded.states[bang].progress, fuse, sub_ts[last]))


def _subset(state: shards.ShardState, picked: npt.NDArray[np.int64]) -> shards.ShardState:
    return shards.ShardState([state.symbols[i] for i in picked.tolist()], state.periods[picked],
                             [state.progress[i] for i in picked.tolist()])
