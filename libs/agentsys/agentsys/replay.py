"""Submit a CSV file as a ``replay`` task: the one code path of the API and agentctl.

The rows are validated here (a bad file is refused whole, with line numbers) and staged
in PostgreSQL under the task id in the same transaction as the task row; the job gets
the id, never the rows.
"""

from __future__ import annotations

from typing import Any

import psycopg
from redis import Redis

from agentsys import task_params, tasks
from agentsys.keys import Keys
from agentsys.models import Priority, TaskRun
from agentsys.timefmt import iso_us_many


def stage(conn: psycopg.Connection, task_id: str, rows: Any) -> None:
    """COPY parsed rows into ``staged_prices`` (the caller's transaction)."""
    with conn.cursor() as cur, cur.copy("COPY staged_prices (task_id, symbol, ts, price) FROM STDIN") as copy:
        for symbol, when, price in zip(rows.symbols.tolist(), iso_us_many(rows.ts), rows.price.tolist(), strict=True):
            copy.write_row((task_id, symbol, when, price))


def submit_replay(
    redis: Redis,
    conn: psycopg.Connection,
    k: Keys,
    *,
    csv_text: str,
    fast: int | None = None,
    mid: int | None = None,
    slow: int | None = None,
    replace: bool = False,
    priority: Priority | str = Priority.normal,
) -> TaskRun:
    """Validate the CSV, stage its rows and submit the task; InputError when refused."""
    from agentsys.sources.csvfile import parse_csv

    params = task_params.validate("replay", {"fast": fast, "mid": mid, "slow": slow, "replace": replace})
    rows = parse_csv(csv_text)
    import uuid

    task_id = uuid.uuid4().hex
    stage(conn, task_id, rows)
    return tasks.submit(redis, conn, k, type="replay", params=params, priority=priority, task_id=task_id)
