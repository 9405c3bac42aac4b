"""The daily clean-up task: old ended tasks go (with their targets and staged rows), the rest stays."""

from __future__ import annotations

from agentsys import tasks
from tests.support.pipeline import drain


def _task(conn, task_id: str, state: str, days_ago: float) -> None:
    conn.execute(
        "INSERT INTO task_runs (id, type, state, created_at, updated_at, ended_at)"
        " VALUES (%s, 'note', %s, now() - make_interval(days => %s), now() - make_interval(days => %s),"
        " CASE WHEN %s IN ('finished', 'failed', 'canceled', 'stopped') THEN now() - make_interval(days => %s) END)",
        (task_id, state, days_ago, days_ago, state, days_ago))


def test_cleanup_deletes_old_ended_tasks_only(stack):
    with stack.db() as conn:
        _task(conn, "old-finished", "finished", 10)
        _task(conn, "old-failed", "failed", 8)
        _task(conn, "old-started", "started", 10)   # still running (a long composite task): kept
        _task(conn, "new-finished", "finished", 1)
        conn.execute("INSERT INTO task_targets (task_id, symbol, target_ts) VALUES ('old-finished', 'A', now())")
        conn.execute("INSERT INTO staged_prices (task_id, symbol, ts, price) VALUES ('old-failed', 'A', now(), 1)")
        conn.commit()
        run = tasks.submit(stack.redis, conn, stack.keys, type="cleanup", params={"older_than_days": 7})
        assert run.params == {"older_than_days": 7}
    drain(stack)
    with stack.db() as conn:
        done = tasks.get(conn, run.id)
        assert done.state == "finished", done.error
        assert done.result["task_runs"] == 2 and done.result["staged_prices"] == 1
        left = {r[0] for r in conn.execute("SELECT id FROM task_runs")}
        assert left == {"old-started", "new-finished", run.id}
        assert conn.execute("SELECT count(*) FROM task_targets").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM staged_prices").fetchone()[0] == 0


def test_cleanup_defaults_to_the_configured_history(stack):
    with stack.db() as conn:
        run = tasks.submit(stack.redis, conn, stack.keys, type="cleanup", params={})
    assert run.params == {"older_than_days": 7}
