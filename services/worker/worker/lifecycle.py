"""A composite task's life after its ingest: targets recorded, settled, completed, reopened.

A ``pipeline``, ``replay`` or ``backfill`` task never waits inside a worker. Its ingest
records, per symbol, the ts the last agent (bang) must reach (:func:`record_targets`); the
bang job that reaches the last of them finishes the task in its own transaction
(:func:`complete_tasks`); a ``replace`` that rewinds a symbol reopens the targets it
undid (:func:`reopen_targets`). Progress is the fraction of its symbol-ticks done. Every
function runs in its caller's transaction; :func:`announce` publishes after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from agentsys import tasks
from agentsys.models import TaskRun, TaskState
from worker.context import JobContext

if TYPE_CHECKING:
    from worker.agents.store import Stored  # which calls reopen_targets


def lock(conn: psycopg.Connection, task_id: str) -> list[str] | None:
    """Lock the task's row; the symbols of its targets when they are recorded already.

    Two deliveries of one task's job may run at once: the row lock makes the later wait
    for the earlier to commit, so it sees the targets (and not an emptied stage).
    """
    conn.execute("SELECT 1 FROM task_runs WHERE id = %s FOR UPDATE", (task_id,))
    if not conn.execute("SELECT 1 FROM task_targets WHERE task_id = %s LIMIT 1", (task_id,)).fetchone():
        return None
    return [r[0] for r in conn.execute("SELECT symbol FROM task_targets WHERE task_id = %s", (task_id,))]


def record_targets(conn: psycopg.Connection, task_id: str, stored: Stored) -> None:
    """The ts each stored symbol must reach; those the bang agent has reached already are done."""
    conn.execute(
        "INSERT INTO task_targets (task_id, symbol, target_ts, ticks, first_ts)"
        " SELECT %s, * FROM unnest(%s::text[], %s::timestamptz[], %s::int[], %s::timestamptz[])"
        " ON CONFLICT DO NOTHING",
        (task_id, stored.symbols, stored.last_ts, stored.ticks, stored.first_ts),
    )
    conn.execute(
        """
        UPDATE task_targets t SET done = true FROM progress g
        WHERE t.task_id = %s AND g.agent = 'bang' AND g.symbol = t.symbol AND g.last_ts >= t.target_ts
        """,
        (task_id,),
    )


def record_skipped(conn: psycopg.Connection, task_id: str, skipped: list[dict[str, str]]) -> None:
    """Keep the symbols the ingest could not get in the task's result (:func:`settle` carries them on)."""
    tasks.set_state(conn, task_id, TaskState.started, result={"skipped": skipped})


def finish_without_targets(conn: psycopg.Connection, task_id: str) -> TaskRun | None:
    """Finish a task that asked for no symbol: no bang job would ever end it."""
    return tasks.set_state(conn, task_id, TaskState.finished, result={"symbols": 0, "ticks": 0, "bangs": 0})


def complete_tasks(conn: psycopg.Connection, symbols: list[str]) -> list[TaskRun]:
    """Mark targets reached by the bang progress; finish tasks whose targets all are.

    In the bang job's transaction. Task rows are locked (in id order) before counting,
    so of two jobs finishing a task's last shards, the later one sees the other's targets.
    """
    reached = conn.execute(
        """
        UPDATE task_targets t SET done = true
        FROM progress g
        WHERE g.agent = 'bang' AND g.symbol = t.symbol AND NOT t.done AND g.last_ts >= t.target_ts
          AND t.symbol = ANY(%s)
        RETURNING t.task_id
        """,
        (symbols,),
    ).fetchall()
    return settle(conn, sorted({r[0] for r in reached}))


def settle(conn: psycopg.Connection, task_ids: list[str]) -> list[TaskRun]:
    """Bring these composite tasks' progress (and, when complete, state) up to their targets.

    The final result keeps the ``skipped`` symbols the ingest recorded (see
    ``worker.jobs.ingest``), so a finished task still says what it did not cover.
    """
    if not task_ids:
        return []
    locked = conn.execute("SELECT id, result FROM task_runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (task_ids,))
    earlier: dict[str, Any] = dict(locked.fetchall())
    totals = conn.execute(
        """
        SELECT t.task_id, sum(t.ticks) FILTER (WHERE t.done), sum(t.ticks), bool_and(t.done), count(*),
               (SELECT count(*) FROM bang_events b JOIN task_targets u ON u.symbol = b.symbol
                 AND b.ts BETWEEN u.first_ts AND u.target_ts WHERE u.task_id = t.task_id)
        FROM task_targets t WHERE t.task_id = ANY(%s) GROUP BY t.task_id ORDER BY t.task_id
        """,
        (task_ids,),
    ).fetchall()
    changed = []
    for task_id, done_ticks, all_ticks, complete, n_symbols, n_bangs in totals:
        if complete:
            result: dict[str, Any] = {"symbols": int(n_symbols), "ticks": int(all_ticks or 0), "bangs": int(n_bangs)}
            before = earlier.get(task_id)
            skipped = before.get("skipped") if isinstance(before, dict) else None
            if skipped:
                result["skipped"] = skipped
            run = tasks.set_state(conn, task_id, TaskState.finished, result=result)
        else:
            fraction = float(done_ticks or 0) / float(all_ticks) if all_ticks else 0.0
            run = tasks.set_state(conn, task_id, TaskState.started, progress=fraction)
        if run is not None:
            changed.append(run)
    return changed


def reopen_targets(conn: psycopg.Connection) -> None:
    """Targets at or after a rewound symbol's first replaced ts are not reached any more.

    Called by ``worker.agents.store.reset_from`` while its ``resets`` table
    (symbol, from_ts) exists, in the same transaction.
    """
    conn.execute("UPDATE task_targets t SET done = false FROM resets r WHERE t.symbol = r.symbol"
                 " AND t.target_ts >= r.from_ts AND t.done")


def announce(ctx: JobContext, runs: list[TaskRun]) -> None:
    """Publish the state of tasks that changed, after their commit."""
    for run in runs:
        tasks.publish_state(ctx.redis, ctx.keys, run)
