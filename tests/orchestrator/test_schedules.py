"""Named schedules: CRUD over the API, stored where the scheduler reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agentsys import schedules
from agentsys.schedules import MarketHours


def test_crud(client, anon, stack):
    assert anon.get("/schedules").json() == []
    spec = {"type": "note", "params": {"description": "tick"}, "interval_s": 5}
    r = client.put("/schedules/live-tick", json=spec)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "live-tick" and created["interval_s"] == 5 and created["cron"] is None
    assert created["timezone"] == "UTC" and created["enabled"] is True and created["priority"] == "normal"

    stored = json.loads(stack.redis.hget(stack.keys.schedules(), "live-tick"))
    assert stored["type"] == "note" and stored["params"] == {"description": "tick"}
    assert [s.name for s in schedules.list_schedules(stack.redis, stack.keys)] == ["live-tick"]

    replaced = client.put("/schedules/live-tick", json={
        "type": "note", "params": {"description": "market open"}, "cron": "*/5 9-16 * * 1-5",
        "timezone": "America/New_York", "calendar": {"days": [4, 0, 1], "open": "09:30", "close": "16:00",
                                                     "holidays": ["2026-12-25"]},
        "enabled": False, "priority": "low"})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["cron"] == "*/5 9-16 * * 1-5" and body["interval_s"] is None and body["enabled"] is False
    assert body["calendar"]["days"] == [0, 1, 4]
    assert anon.get("/schedules/live-tick").json() == body
    assert [s["name"] for s in anon.get("/schedules").json()] == ["live-tick"]

    assert client.delete("/schedules/live-tick").status_code == 204
    assert anon.get("/schedules/live-tick").status_code == 404
    assert client.delete("/schedules/live-tick").status_code == 404
    assert anon.get("/schedules").json() == []


@pytest.mark.parametrize(("body", "loc"), [
    ({"type": "note", "params": {"description": "x"}}, ["body"]),
    ({"type": "note", "params": {"description": "x"}, "interval_s": 5, "cron": "* * * * *"}, ["body"]),
    ({"type": "note", "params": {"description": "x"}, "cron": "every minute"}, ["body", "cron"]),
    ({"type": "note", "params": {"description": "x"}, "cron": "61 * * * *"}, ["body", "cron"]),
    ({"type": "note", "params": {"description": "x"}, "interval_s": 0}, ["body", "interval_s"]),
    ({"type": "note", "params": {"description": "x"}, "interval_s": 5, "timezone": "Mars/Base"},
     ["body", "timezone"]),
    ({"type": "nope", "interval_s": 5}, ["body", "type"]),
    ({"type": "replay", "interval_s": 5}, ["body", "type"]),
    ({"type": "note", "params": {}, "interval_s": 5}, ["body", "params"]),
    ({"type": "note", "params": {"description": "x"}, "interval_s": 5,
      "calendar": {"open": "17:00", "close": "09:00"}}, ["body", "calendar"]),
    ({"type": "note", "params": {"description": "x"}, "interval_s": 5, "calendar": {"days": [7]}},
     ["body", "calendar", "days"]),
    ({"type": "note", "params": {"description": "x"}, "interval_s": 5, "every": 3}, ["body", "every"]),
])
def test_validation(client, stack, body, loc):
    r = client.put("/schedules/s1", json=body)
    assert r.status_code == 422, r.text
    assert any(d["loc"][: len(loc)] == loc for d in r.json()["detail"]), r.json()
    assert stack.redis.hlen(stack.keys.schedules()) == 0


def test_names_are_validated(client):
    spec = {"type": "note", "params": {"description": "x"}, "interval_s": 5}
    assert client.put("/schedules/has space", json=spec).status_code == 422
    assert client.put("/schedules/" + "n" * 65, json=spec).status_code == 422
    assert client.get("/schedules/-leading").status_code == 422


def test_unreadable_entries_are_skipped(client, stack):
    stack.redis.hset(stack.keys.schedules(), "junk", b"{not json")
    client.put("/schedules/ok", json={"type": "note", "params": {"description": "x"}, "interval_s": 60})
    assert [s["name"] for s in client.get("/schedules").json()] == ["ok"]
    assert client.get("/schedules/junk").status_code == 404


def test_market_hours():
    hours = MarketHours(holidays=["2026-01-19"])
    ny = ZoneInfo("America/New_York")
    assert hours.is_open(datetime(2026, 1, 5, 15, 0, tzinfo=UTC), ny)  # Monday 10:00 in New York
    assert not hours.is_open(datetime(2026, 1, 5, 14, 0, tzinfo=UTC), ny)  # 09:00, before the open
    assert not hours.is_open(datetime(2026, 1, 5, 21, 0, tzinfo=UTC), ny)  # 16:00, closed
    assert not hours.is_open(datetime(2026, 1, 10, 15, 0, tzinfo=UTC), ny)  # Saturday
    assert not hours.is_open(datetime(2026, 1, 19, 15, 0, tzinfo=UTC), ny)  # a holiday
