"""Symbols CRUD, history with cache-aside (hit, miss, TTL, invalidation, no PostgreSQL on a hit), events."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from agentsys import flags
from agentsys.cache import cached_history, invalidate_history
from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings
from tests.orchestrator.conftest import AUTH, TOKEN, needs_pipeline, zigzag_csv


def test_add_list_delete(client, anon, stack):
    r = client.post("/symbols", json={"symbols": [{"symbol": "AAA"}, {"symbol": "BTC/USD", "fast": 5, "mid": 13,
                                                                        "slow": 34, "source": "http"}]})
    assert r.status_code == 201, r.text
    by_name = {s["symbol"]: s for s in r.json()}
    assert (by_name["AAA"]["fast"], by_name["AAA"]["mid"], by_name["AAA"]["slow"]) == (9, 21, 55)
    assert by_name["BTC/USD"]["source"] == "http" and by_name["BTC/USD"]["slow"] == 34
    again = client.post("/symbols", json={"symbols": [{"symbol": "AAA", "fast": 2, "mid": 3, "slow": 4}]}).json()
    assert again[0]["fast"] == 9  # existing symbols are left as they are

    flags.set_symbol_enabled(stack.redis, stack.keys, "AAA", False)
    page = anon.get("/symbols", params={"limit": 1}).json()
    assert [s["symbol"] for s in page["items"]] == ["AAA"] and page["items"][0]["enabled"] is False
    rest = anon.get("/symbols", params={"after": page["next_cursor"]}).json()
    assert [s["symbol"] for s in rest["items"]] == ["BTC/USD"] and rest["next_cursor"] is None

    r = client.delete("/symbols", params=[("symbol", "AAA"), ("symbol", "NOPE")])
    assert r.status_code == 200 and r.json() == {"deleted": 1}
    assert [s["symbol"] for s in anon.get("/symbols").json()["items"]] == ["BTC/USD"]


def test_new_symbols_take_the_shard_size_setting(stack, monkeypatch):
    monkeypatch.setenv("SHARD_SIZE", "2")
    with TestClient(create_app(OrchestratorSettings(api_token=TOKEN, _env_file=None)), headers=AUTH) as c:
        r = c.post("/symbols", json={"symbols": [{"symbol": f"SZ{i}"} for i in range(5)]})
    assert r.status_code == 201, r.text
    assert {s["symbol"]: s["shard"] for s in r.json()} == {f"SZ{i}": i // 2 for i in range(5)}


@pytest.mark.parametrize(("body", "loc"), [
    ({"symbols": [{"symbol": "aapl"}]}, ["body", "symbols", 0, "symbol"]),
    ({"symbols": [{"symbol": "A" * 33}]}, ["body", "symbols", 0, "symbol"]),
    ({"symbols": [{"symbol": "AAA", "fast": 9, "mid": 5, "slow": 20}]}, ["body", "symbols", 0]),
    ({"symbols": [{"symbol": "AAA", "fast": 0}]}, ["body", "symbols", 0, "fast"]),
    ({"symbols": [{"symbol": "AAA", "source": "ftp"}]}, ["body", "symbols", 0, "source"]),
    ({"symbols": []}, ["body", "symbols"]),
    ({"symbols": [{"symbol": f"S{i}"} for i in range(10_001)]}, ["body", "symbols"]),
])
def test_symbol_validation(client, body, loc):
    r = client.post("/symbols", json=body)
    assert r.status_code == 422
    assert any(d["loc"][: len(loc)] == loc for d in r.json()["detail"]), r.json()


def test_delete_and_list_validation(client):
    assert client.delete("/symbols").status_code == 422
    assert client.delete("/symbols", params={"symbol": "bad one"}).status_code == 422
    assert client.delete("/symbols", params=[("symbol", f"S{i}") for i in range(1001)]).status_code == 422
    assert client.get("/symbols", params={"limit": 0}).status_code == 422
    assert client.get("/symbols", params={"after": "lower"}).status_code == 422


@pytest.fixture
def replayed(client, stack):
    """AAA with 40 prices, EMAs and bangs, computed by the real pipeline in this process."""
    needs_pipeline()
    from tests.support.pipeline import drain

    task = client.post("/tasks", json={"type": "replay", "params": {"csv": zigzag_csv(), "fast": 2, "mid": 3,
                                                                    "slow": 5}}).json()
    drain(stack)
    assert client.get(f"/tasks/{task['id']}").json()["state"] == "finished"
    return task


def test_history_miss_then_hit_with_ttl(client, stack, settings, replayed):
    first = client.get("/symbols/AAA/history")
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    body = first.json()
    assert body["symbol"] == "AAA" and body["periods"] == {"fast": 2, "mid": 3, "slow": 5}
    prices = body["prices"]
    assert len(prices) == 40 and prices == sorted(prices, key=lambda p: p["ts"])
    assert prices[0]["ema_slow"] is None and prices[-1]["ema_slow"] is not None and prices[-1]["state"]
    assert body["bangs"] and all(b["to_state"] in ("BULL", "BEAR") for b in body["bangs"])
    second = client.get("/symbols/AAA/history")
    assert second.headers["x-cache"] == "hit" and second.json() == body
    assert 0 < stack.redis.ttl(stack.keys.history("AAA")) <= settings.history_cache_ttl

    window = client.get("/symbols/AAA/history", params={"from": prices[10]["ts"], "to": prices[19]["ts"],
                                                        "limit": 5})
    assert window.headers["x-cache"] == "miss"
    assert [p["ts"] for p in window.json()["prices"]] == [p["ts"] for p in prices[15:20]]
    assert all(prices[15]["ts"] <= b["ts"] <= prices[19]["ts"] for b in window.json()["bangs"])


def test_a_hit_does_not_touch_postgresql(client, stack, replayed):
    assert client.get("/symbols/AAA/history").headers["x-cache"] == "miss"
    locked = stack.db()
    try:
        locked.execute("LOCK TABLE prices, indicators, bang_events, symbols IN ACCESS EXCLUSIVE MODE")
        answer = {}

        def ask():
            answer["r"] = client.get("/symbols/AAA/history")

        asker = threading.Thread(target=ask)
        asker.start()
        asker.join(timeout=10)
        assert not asker.is_alive(), "a cache hit waited for PostgreSQL's lock"
        assert answer["r"].status_code == 200 and answer["r"].headers["x-cache"] == "hit"
    finally:
        locked.rollback()
        locked.close()


def test_new_data_from_the_pipeline_invalidates(client, stack, replayed):
    from tests.support.pipeline import drain

    assert client.get("/symbols/AAA/history").headers["x-cache"] == "miss"
    assert client.get("/symbols/AAA/history").headers["x-cache"] == "hit"
    more = zigzag_csv(n=45).splitlines()
    client.post("/tasks", json={"type": "replay", "params": {"csv": "\n".join([more[0], *more[41:]]) + "\n"}})
    drain(stack)  # the workers invalidate after each commit
    fresh = client.get("/symbols/AAA/history")
    assert fresh.headers["x-cache"] == "miss" and len(fresh.json()["prices"]) == 45
    assert fresh.json()["prices"][-1]["ema_slow"] is not None
    assert client.get("/symbols/AAA/history").headers["x-cache"] == "hit"


def test_explicit_invalidation_and_deletion(client, stack, replayed):
    assert client.get("/symbols/AAA/history").headers["x-cache"] == "miss"
    invalidate_history(stack.redis, stack.keys, ["AAA", "OTHER"])
    assert client.get("/symbols/AAA/history").headers["x-cache"] == "miss"
    client.delete("/symbols", params={"symbol": "AAA"})
    assert client.get("/symbols/AAA/history").status_code == 404


def test_a_fill_racing_an_invalidation_is_not_stored(stack):
    def load():
        invalidate_history(stack.redis, stack.keys, ["AAA"])  # new data committed while we queried
        return b'{"stale": true}'

    payload, hit = cached_history(stack.redis, stack.keys, "AAA", "q", load)
    assert payload == b'{"stale": true}' and hit is False
    assert stack.redis.hget(stack.keys.history("AAA"), "q") is None
    payload, hit = cached_history(stack.redis, stack.keys, "AAA", "q", lambda: b"{}")
    assert stack.redis.hget(stack.keys.history("AAA"), "q") == b"{}"


def test_history_errors(client, stack):
    r = client.get("/symbols/NOPE/history")
    assert r.status_code == 404 and r.json() == {"detail": "unknown symbol 'NOPE'"}
    assert stack.redis.exists(stack.keys.history("NOPE")) == 0
    assert client.get("/symbols/lower/history").status_code == 422
    assert client.get("/symbols/AAA/history", params={"limit": 0}).status_code == 422
    assert client.get("/symbols/AAA/history", params={"limit": 10_001}).status_code == 422
    r = client.get("/symbols/AAA/history", params={"from": "soon"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "from"]


def test_symbol_with_a_slash_has_history(client, stack):
    client.post("/symbols", json={"symbols": [{"symbol": "BTC/USD"}]})
    r = client.get("/symbols/BTC/USD/history")
    assert r.status_code == 200 and r.json()["symbol"] == "BTC/USD" and r.json()["prices"] == []


def test_events_newest_first(client, anon, replayed):
    needs_pipeline()
    events = anon.get("/events").json()
    assert events and [e["ts"] for e in events] == sorted((e["ts"] for e in events), reverse=True)
    assert anon.get("/events", params={"symbol": "AAA", "limit": 1}).json() == events[:1]
    since = events[len(events) // 2]["ts"]
    assert anon.get("/events", params={"since": since}).json() == [e for e in events if e["ts"] >= since]
    assert anon.get("/events", params={"symbol": "OTHER"}).json() == []
    assert anon.get("/events", params={"symbol": "bad one"}).status_code == 422
    assert anon.get("/events", params={"limit": 0}).status_code == 422


def test_only_symbols_whose_history_was_asked_for_are_invalidated(stack):
    """A live tick invalidates every symbol each second; only watched ones cost Redis writes."""
    assert invalidate_history(stack.redis, stack.keys, ["NOBODY", "WATCHED"]) == 0
    assert stack.redis.get(stack.keys.history_version("WATCHED")) is None
    cached_history(stack.redis, stack.keys, "WATCHED", "q", lambda: b"{}")
    assert stack.redis.hget(stack.keys.history("WATCHED"), "q") == b"{}"
    assert invalidate_history(stack.redis, stack.keys, ["NOBODY", "WATCHED"]) == 1
    assert stack.redis.hget(stack.keys.history("WATCHED"), "q") is None
    assert stack.redis.get(stack.keys.history_version("NOBODY")) is None
