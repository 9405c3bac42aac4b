"""GET /tasks: filters, cursor pagination, and index-only plans over a million rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agentsys.queries import decode_cursor, task_list_query

TYPES = ("note", "pipeline", "replay", "backfill", "recover")
STATES = ("queued", "started", "finished", "failed", "canceled")
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _insert(stack, n: int) -> None:
    """n rows, one second apart going back from NOW, cycling types, states and 50 workers."""
    with stack.db() as conn:
        conn.execute(
            """
            INSERT INTO task_runs (id, type, params, priority, state, worker, queue, created_at, updated_at)
            SELECT 't' || lpad(g::text, 7, '0'), (%(types)s::text[])[1 + g %% 5], '{}'::jsonb, 'normal',
                   (%(states)s::text[])[1 + (g / 7) %% 5], 'w' || (g %% 50), 'control',
                   %(now)s - g * interval '1 second', %(now)s
            FROM generate_series(1, %(n)s) g
            """,
            {"types": list(TYPES), "states": list(STATES), "now": NOW, "n": n},
        )
        conn.execute("ANALYZE task_runs")


def _all_pages(client, **params):
    seen, cursor = [], None
    while True:
        page = client.get("/tasks", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_cursor_pages_cover_every_row_once_newest_first(client, stack):
    _insert(stack, 103)
    items = _all_pages(client, limit=10)
    keys = [(i["created_at"], i["id"]) for i in items]
    assert len(items) == 103 and len(set(keys)) == 103
    assert keys == sorted(keys, reverse=True)


def test_filters(client, stack):
    _insert(stack, 200)
    failed = _all_pages(client, state="failed", limit=7)
    assert failed and all(i["state"] == "failed" for i in failed)
    with stack.db() as conn:
        assert len(failed) == conn.execute("SELECT count(*) FROM task_runs WHERE state = 'failed'").fetchone()[0]
    notes = _all_pages(client, type="note", worker="w5")
    assert notes and all(i["type"] == "note" and i["worker"] == "w5" for i in notes)
    since, until = NOW - timedelta(seconds=50), NOW - timedelta(seconds=20)
    window = _all_pages(client, since=since.isoformat(), until=until.isoformat(), limit=500)
    assert len(window) == 30
    assert all(since <= datetime.fromisoformat(i["created_at"]) < until for i in window)
    assert client.get("/tasks", params={"type": "nothing"}).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(("params", "loc"), [
    ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"state": "lost"}, "state"),
    ({"type": "Bad Type"}, "type"), ({"worker": "a b"}, "worker"), ({"worker": "w\x00"}, "worker"),
    ({"since": "yesterday"}, "since"), ({"cursor": "not-a-cursor"}, "cursor"), ({"cursor": "x" * 401}, "cursor"),
])
def test_bad_filters_are_422_naming_the_field(client, params, loc):
    r = client.get("/tasks", params=params)
    assert r.status_code == 422, r.text
    assert any(d["loc"] == ["query", loc] for d in r.json()["detail"]), r.json()


def _scans(plan: dict) -> list[str]:
    found = [plan["Node Type"]]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


@pytest.mark.slow
def test_list_queries_use_indexes_with_a_million_rows(client, stack):
    _insert(stack, 1_000_000)
    first = client.get("/tasks", params={"limit": 50}).json()
    after = decode_cursor(first["next_cursor"])
    cases = [
        {}, {"state": "failed"}, {"type": "replay"}, {"worker": "w7"}, {"state": "failed", "type": "replay"},
        {"since": NOW - timedelta(hours=1)}, {"since": NOW - timedelta(days=3), "until": NOW - timedelta(days=2)},
        {"state": "queued", "since": NOW - timedelta(days=1)}, {"after": after}, {"type": "note", "after": after},
        {"worker": "w3", "until": NOW - timedelta(days=5)}, {"state": "canceled", "type": "note", "worker": "w10"},
    ]
    with stack.db() as conn:
        for filters in cases:
            query, args = task_list_query(limit=51, **filters)
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, args).fetchone()[0]
            plan = plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"]
            nodes = _scans(plan)
            assert "Seq Scan" not in nodes, (filters, nodes)
            assert any("Index" in n for n in nodes), (filters, nodes)
    # and through the API, paging with a filter
    page = client.get("/tasks", params={"state": "failed", "type": "replay", "limit": 100})
    assert page.status_code == 200 and len(page.json()["items"]) == 100
    nxt = client.get("/tasks", params={"state": "failed", "type": "replay", "limit": 100,
                                       "cursor": page.json()["next_cursor"]}).json()["items"]
    assert nxt[0]["created_at"] <= page.json()["items"][-1]["created_at"]
