"""Backfill and recover tasks end to end: POST /tasks, real workers (in-process), real databases.

The http cases run against the local fake Binance. The worker's PRICE_INTERVAL_S is 5 s,
so a backfill at another interval whose bars followed the setting would show it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from agentsys import flags, tasks
from tests.orchestrator.conftest import needs_pipeline
from tests.support.pipeline import ALL_QUEUES, QuietWorker, drain
from tests.worker.sources.fake_binance import FlakyBinance, close_at

START = datetime(2026, 1, 5, tzinfo=UTC)
SETTING_S = 5


@pytest.fixture
def worker_env(stack, monkeypatch) -> None:
    """The in-process workers' settings: PRICE_INTERVAL_S differs from every interval asked for."""
    from worker.settings import get_settings

    monkeypatch.setenv("PRICE_INTERVAL_S", str(SETTING_S))
    monkeypatch.setenv("HTTP_SOURCE_RETRIES", "0")  # a 5xx fails at once, no backoff to sit through
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def fake(worker_env, monkeypatch) -> Iterator[FlakyBinance]:
    server = FlakyBinance()
    monkeypatch.setenv("HTTP_SOURCE_URL", server.url)
    try:
        yield server
    finally:
        server.close()


def _add(client, *specs: dict[str, Any]) -> None:
    r = client.post("/symbols", json={"symbols": list(specs)})
    assert r.status_code == 201, r.text


def _submit(client, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/tasks", json={"type": kind, "params": params})
    assert r.status_code == 202, r.text
    return r.json()


def _backfill(client, symbols: list[str], *, minutes: int, interval_s: int, **extra: Any) -> dict[str, Any]:
    end = START + timedelta(minutes=minutes)
    return _submit(client, "backfill", {"symbols": symbols, "start": START.isoformat(), "end": end.isoformat(),
                                        "interval_s": interval_s, **extra})


def _task(client, task_id: str) -> dict[str, Any]:
    r = client.get(f"/tasks/{task_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _stamps(stack, table: str, symbol: str) -> list[int]:
    """Epoch seconds of a symbol's rows in prices or indicators, in order."""
    with stack.db() as conn:
        found = conn.execute(f"SELECT ts FROM {table} WHERE symbol = %s ORDER BY ts", (symbol,)).fetchall()
    return [int(r[0].timestamp()) for r in found]


def _expected(minutes: int, interval_s: int) -> list[int]:
    """Epoch seconds of the bars from START to START + minutes, inclusive, on multiples of the interval."""
    t0 = int(START.timestamp())
    return list(range(-(-t0 // interval_s) * interval_s, t0 + minutes * 60 + 1, interval_s))


def _queued(stack) -> int:
    return sum(tasks.queue(stack.redis, name).count for name in ALL_QUEUES)


# ---- backfill ----------------------------------------------------------------------------

def test_synthetic_backfill_stores_bars_at_the_requested_interval(client, stack, worker_env):
    needs_pipeline()
    _add(client, {"symbol": "SYA", "fast": 2, "mid": 3, "slow": 5}, {"symbol": "SYB", "fast": 2, "mid": 3, "slow": 5})
    task = _backfill(client, ["SYA", "SYB"], minutes=120, interval_s=300)
    drain(stack)
    done = _task(client, task["id"])
    want = _expected(120, 300)
    assert len(want) == 25
    assert done["state"] == "finished" and done["progress"] == 1.0, done
    assert done["result"] == {"symbols": 2, "ticks": 50, "bangs": done["result"]["bangs"]}
    for symbol in ("SYA", "SYB"):
        assert _stamps(stack, "prices", symbol) == want
        assert _stamps(stack, "indicators", symbol) == want
    with stack.db() as conn:
        states = conn.execute("SELECT count(*) FROM indicators WHERE state IS NOT NULL").fetchone()[0]
    assert states == 2 * (25 - 4)  # defined from the slow (5th) price on


@pytest.mark.parametrize(("interval_s", "kline"), [(60, "1m"), (120, "1m"), (900, "15m")])
def test_http_backfill_stores_bars_at_the_requested_interval_not_the_setting(client, stack, fake, interval_s, kline):
    """Regression: the http fetch used PRICE_INTERVAL_S (5 s bars from 1 s klines) whatever the task asked."""
    needs_pipeline()
    _add(client, {"symbol": "BTC/USDT", "source": "http"}, {"symbol": "ETH-USDT", "source": "http"})
    task = _backfill(client, ["BTC/USDT", "ETH-USDT"], minutes=180, interval_s=interval_s)
    drain(stack)
    done = _task(client, task["id"])
    want = _expected(180, interval_s)
    assert done["state"] == "finished", done
    assert done["result"] == {"symbols": 2, "ticks": 2 * len(want), "bangs": done["result"]["bangs"]}
    assert "skipped" not in done["result"]
    for symbol in ("BTC/USDT", "ETH-USDT"):
        stamps = _stamps(stack, "prices", symbol)
        assert stamps == want
        assert set(np.diff(stamps).tolist()) == {interval_s}
        assert _stamps(stack, "indicators", symbol) == want
    with stack.db() as conn:
        prices = [r[0] for r in conn.execute("SELECT price FROM prices WHERE symbol = 'BTC/USDT' ORDER BY ts")]
    # each bar's close is the close of its last kline
    assert prices == [close_at((t + interval_s) * 1000 - _kline_ms(kline)) for t in want]
    asked = fake.klines_requests()
    assert asked and {p["interval"] for p in asked} == {kline}


def _kline_ms(name: str) -> int:
    return {"1m": 60_000, "15m": 900_000}[name]


def test_http_pipeline_tick_still_uses_the_setting(client, stack, fake):
    needs_pipeline()
    _add(client, {"symbol": "BTC/USDT", "source": "http"})
    bar = START + timedelta(minutes=7)
    task = _submit(client, "pipeline", {"symbols": ["BTC/USDT"], "ts": bar.isoformat()})
    drain(stack)
    done = _task(client, task["id"])
    assert done["state"] == "finished" and done["result"]["ticks"] == 1, done
    assert _stamps(stack, "prices", "BTC/USDT") == [int(bar.timestamp())]
    (asked,) = fake.klines_requests()
    assert asked["interval"] == "1s"  # a 5 s bar (the setting) from 1 s klines
    with stack.db() as conn:
        (price,) = conn.execute("SELECT price FROM prices").fetchone()
    assert price == close_at(int(bar.timestamp()) * 1000 + (SETTING_S - 1) * 1000)


def test_an_interval_the_http_source_cannot_build_fails_the_task_naming_interval_s(client, stack, fake):
    needs_pipeline()
    _add(client, {"symbol": "BTC/USDT", "source": "http"})
    task = _backfill(client, ["BTC/USDT"], minutes=60, interval_s=1001)
    drain(stack)
    done = _task(client, task["id"])
    assert done["state"] == "failed", done
    assert "interval_s=1001 is not supported" in done["error"] and "1m" in done["error"]
    assert fake.klines_requests() == []  # refused before any request
    assert _stamps(stack, "prices", "BTC/USDT") == []
    # the same interval is fine for a synthetic symbol
    _add(client, {"symbol": "SYN"})
    ok = _backfill(client, ["SYN"], minutes=60, interval_s=1001)
    drain(stack)
    assert _task(client, ok["id"])["state"] == "finished"
    assert _stamps(stack, "prices", "SYN") == _expected(60, 1001) != []


# ---- skipped symbols are reported, never dropped silently ----------------------------------

def test_http_backfill_names_the_symbols_the_source_failed_for(client, stack, fake):
    needs_pipeline()
    fake.down = {"ETHUSDT"}
    _add(client, {"symbol": "BTC/USDT", "source": "http"}, {"symbol": "ETH/USDT", "source": "http"},
         {"symbol": "FOO/USDT", "source": "http"})
    task = _backfill(client, ["BTC/USDT", "ETH/USDT", "FOO/USDT"], minutes=30, interval_s=60)
    drain(stack)
    done = _task(client, task["id"])
    assert done["state"] == "finished", done
    assert done["result"]["symbols"] == 1 and done["result"]["ticks"] == 31
    skipped = {s["symbol"]: s["reason"] for s in done["result"]["skipped"]}
    assert set(skipped) == {"ETH/USDT", "FOO/USDT"}
    assert "HTTP 503" in skipped["ETH/USDT"]
    assert skipped["FOO/USDT"] == "http source: FOO/USDT (FOOUSDT): Invalid symbol. (code -1121, HTTP 400)"
    assert _stamps(stack, "prices", "BTC/USDT") == _expected(30, 60)
    assert _stamps(stack, "prices", "ETH/USDT") == [] and _stamps(stack, "prices", "FOO/USDT") == []

    # nothing of the skipped symbol was written, so a backfill of just it fills the gap later
    fake.down = set()
    again = _backfill(client, ["ETH/USDT"], minutes=30, interval_s=60)
    drain(stack)
    done = _task(client, again["id"])
    assert done["state"] == "finished" and "skipped" not in done["result"], done
    assert _stamps(stack, "prices", "ETH/USDT") == _expected(30, 60)


def test_http_backfill_where_every_symbol_fails_is_a_failed_task_with_the_reasons(client, stack, fake):
    needs_pipeline()
    fake.down = {"ETHUSDT"}
    _add(client, {"symbol": "ETH/USDT", "source": "http"}, {"symbol": "FOO/USDT", "source": "http"})
    task = _backfill(client, ["ETH/USDT", "FOO/USDT"], minutes=30, interval_s=60)
    drain(stack)
    done = _task(client, task["id"])
    assert done["state"] == "failed", done
    assert "no symbol got a price (2 skipped)" in done["error"]
    assert "ETH/USDT: http source: ETH/USDT: HTTP 503" in done["error"]
    assert "FOO/USDT: http source: FOO/USDT (FOOUSDT): Invalid symbol." in done["error"]
    with stack.db() as conn:
        assert conn.execute("SELECT count(*) FROM task_targets").fetchone()[0] == 0
    # the API is back: a retry of the same task finishes (for the symbol that exists)
    fake.down = set()
    assert client.post(f"/tasks/{task['id']}/retry").status_code == 202
    drain(stack)
    done = _task(client, task["id"])
    assert done["state"] == "finished", done
    assert [s["symbol"] for s in done["result"]["skipped"]] == ["FOO/USDT"]


def test_http_pipeline_tick_for_a_bar_that_has_not_ended_says_so(client, stack, fake):
    needs_pipeline()
    _add(client, {"symbol": "BTC/USDT", "source": "http"}, {"symbol": "SYN"})
    task = _submit(client, "pipeline", {"symbols": ["BTC/USDT", "SYN"]})  # the latest bar: still open
    drain(stack)
    done = _task(client, task["id"])
    assert done["state"] == "finished", done
    assert done["result"]["symbols"] == 1
    (skipped,) = done["result"]["skipped"]
    assert skipped["symbol"] == "BTC/USDT" and skipped["reason"].startswith("the source had no ended bar at ")


# ---- recover ----------------------------------------------------------------------------------

class NoSweepWorker(QuietWorker):
    """A worker that does not trigger the recovery sweep on start, which would heal the lag itself."""

    def run_maintenance_tasks(self) -> None:
        pass


def _drain_without_sweep(stack) -> None:
    queues = [tasks.queue(stack.redis, q) for q in ALL_QUEUES]
    NoSweepWorker(queues, connection=stack.redis).work(burst=True)


def test_recover_catches_a_lagging_agent_up_for_the_given_symbols(client, stack, worker_env):
    needs_pipeline()
    _add(client, {"symbol": "RCA", "shard": 0, "fast": 2, "mid": 3, "slow": 5},
         {"symbol": "RCB", "shard": 1, "fast": 2, "mid": 3, "slow": 5})
    flags.set_enabled(stack.redis, stack.keys, "indicator", False)
    feed = _backfill(client, ["RCA", "RCB"], minutes=60, interval_s=60)
    _drain_without_sweep(stack)  # prices stored; the indicator jobs found their agent disabled
    assert _task(client, feed["id"])["state"] == "started"
    assert _stamps(stack, "indicators", "RCA") == [] and _stamps(stack, "indicators", "RCB") == []
    flags.set_enabled(stack.redis, stack.keys, "indicator", True)  # re-enabled, nothing enqueued
    assert _queued(stack) == 0

    rec = _submit(client, "recover", {"agent": "indicator", "symbols": ["RCA"]})
    _drain_without_sweep(stack)
    done = _task(client, rec["id"])
    assert done["state"] == "finished", done
    assert done["result"]["triggered"] == {"indicator": [0]}
    want = _expected(60, 60)
    assert _stamps(stack, "indicators", "RCA") == want  # caught up, and the bang agent after it
    assert _stamps(stack, "indicators", "RCB") == []  # not asked for: still lagging
    with stack.db() as conn:
        marks = dict(conn.execute("SELECT agent, last_ts FROM progress WHERE symbol = 'RCA'").fetchall())
    assert {a: int(t.timestamp()) for a, t in marks.items()} == {a: want[-1] for a in ("price", "indicator", "bang")}
    assert _task(client, feed["id"])["state"] == "started"  # RCB is still behind

    rest = _submit(client, "recover", {"agent": "indicator", "symbols": ["RCA", "RCB"]})
    _drain_without_sweep(stack)
    assert _task(client, rest["id"])["result"]["triggered"] == {"indicator": [1]}  # only the lagging shard
    assert _stamps(stack, "indicators", "RCB") == want
    finished = _task(client, feed["id"])
    assert finished["state"] == "finished" and finished["result"]["ticks"] == 2 * len(want), finished
