from __future__ import annotations

import re
import socket
import time

import numpy as np
import pytest

from agentsys.errors import ConfigError
from agentsys.sources import SourceError, SourceUnavailable, breaker
from tests.worker.sources.fake_binance import FakeBinance, Reply, close_at
from worker.sources import binance
from worker.sources.binance import HttpSourceSettings, RateLimited, fetch_closes

T0_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z
T0_US = T0_MS * 1000
NOW = T0_MS / 1000 + 10 * 86_400  # every bar asked for has ended
MIN_US = 60_000_000


def settings(fake: FakeBinance, **kw) -> HttpSourceSettings:
    base = {"url": fake.url, "connect_timeout_s": 2.0, "read_timeout_s": 0.3, "retries": 2, "backoff_s": 0.01,
            "backoff_cap_s": 0.05, "max_retry_after_s": 2.0, "breaker_failures": 3, "breaker_cooldown_s": 30.0}
    return HttpSourceSettings(**{**base, **kw})


class Sleeps(list):
    """Records the delays the adapter asks for, and waits them for real."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def fetch(stack, fake, *, symbol="BTC/USDT", start=T0_US, end=T0_US + 9 * MIN_US, interval_s=60, now=NOW,
          sleep=None, **kw):
    return fetch_closes(stack.redis, stack.keys, symbol, start, end, interval_s=interval_s,
                        settings=settings(fake, **kw), now=now, sleep=Sleeps() if sleep is None else sleep)


def breaker_state(stack) -> tuple[str, int]:
    found = breaker.state(stack.redis, stack.keys, binance.SOURCE)
    return found["state"], found["failures"]


def test_symbols_and_intervals_map_to_binance():
    assert binance.market_symbol("BTC/USDT") == "BTCUSDT" == binance.market_symbol("BTC-USDT")
    assert binance.market_symbol("ETHUSDT") == "ETHUSDT"
    assert binance.kline_interval(5) == ("1s", 1)
    assert binance.kline_interval(60) == ("1m", 60)
    assert binance.kline_interval(120) == ("1m", 60)
    assert binance.kline_interval(900) == ("15m", 900)
    assert binance.kline_interval(86_400) == ("1d", 86_400)
    assert binance.kline_interval(7 * 86_400) == ("1d", 86_400)


def test_minute_bars_over_three_pages(redis_stack, binance_fake):
    ts, closes = fetch(redis_stack, binance_fake, end=T0_US + 2499 * MIN_US)
    want = T0_US + np.arange(2500, dtype=np.int64) * MIN_US
    assert ts.dtype == np.int64 and closes.dtype == np.float64
    assert np.array_equal(ts, want)
    assert closes.tolist() == [close_at(t // 1000) for t in want.tolist()]
    pages = binance_fake.klines_requests()
    assert [int(p["startTime"]) for p in pages] == [T0_MS, T0_MS + 1000 * 60_000, T0_MS + 2000 * 60_000]
    assert {(p["symbol"], p["interval"], p["limit"], p["endTime"]) for p in pages} == {
        ("BTCUSDT", "1m", "1000", str(T0_MS + 2500 * 60_000 - 1))}
    assert breaker_state(redis_stack) == ("closed", 0)


def test_five_second_bars_from_one_second_klines_without_the_unfinished_bar(redis_stack, binance_fake):
    now = T0_MS / 1000 + 47.5
    ts, closes = fetch(redis_stack, binance_fake, end=T0_US + 60_000_000, interval_s=5, now=now)
    assert ts.tolist() == [T0_US + k * 5_000_000 for k in range(9)]  # the bar opening at 45 s has not ended
    assert closes.tolist() == [close_at(T0_MS + k * 5_000 + 4_000) for k in range(9)]  # its last second's close
    (page,) = binance_fake.klines_requests()
    assert page["interval"] == "1s" and page["symbol"] == "BTCUSDT"


def test_a_fetch_cut_short_by_max_pages_returns_only_whole_bars(redis_stack, binance_fake):
    ts, closes = fetch(redis_stack, binance_fake, start=T0_US + 2_000_000, end=T0_US + 3_000_000_000, interval_s=5,
                       max_pages=1)
    (page,) = binance_fake.klines_requests()  # 1000 one-second klines: 2 s .. 1001 s
    assert int(page["startTime"]) == T0_MS + 2_000
    assert ts.tolist() == [T0_US + k * 5_000_000 for k in range(1, 200)]  # not the bar at 1000 s, half fetched
    assert closes[-1] == close_at(T0_MS + 999_000)


def test_bars_outside_the_range_are_left_out(redis_stack, binance_fake):
    ts, _ = fetch(redis_stack, binance_fake, start=T0_US + 30_000_000, end=T0_US + 3 * MIN_US)
    assert ts.tolist() == [T0_US + MIN_US, T0_US + 2 * MIN_US, T0_US + 3 * MIN_US]


def test_a_timeout_is_retried(redis_stack, binance_fake):
    binance_fake.then(Reply(delay=5.0))
    sleeps = Sleeps()
    began = time.monotonic()
    ts, closes = fetch(redis_stack, binance_fake, sleep=sleeps)
    assert len(ts) == 10 and closes[0] == close_at(T0_MS)
    assert len(binance_fake.requests) == 2
    assert len(sleeps) == 1 and 0.005 <= sleeps[0] <= 0.01
    assert time.monotonic() - began < 3  # the read timeout (0.3 s) cut the slow answer short
    assert breaker_state(redis_stack) == ("closed", 0)


def test_5xx_are_retried_with_exponential_backoff_and_jitter(redis_stack, binance_fake):
    binance_fake.then(Reply(503, body={"code": -1001, "msg": "Internal error."}), Reply(500, raw=b"oops"))
    sleeps = Sleeps()
    ts, _ = fetch(redis_stack, binance_fake, sleep=sleeps)
    assert len(ts) == 10 and len(binance_fake.requests) == 3
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02


def test_failures_after_the_retries_are_source_unavailable_and_count_for_the_breaker(redis_stack, binance_fake):
    binance_fake.always = Reply(503, body={"code": -1001, "msg": "Internal error."})
    with pytest.raises(SourceUnavailable) as error:
        fetch(redis_stack, binance_fake)
    assert str(error.value) == ("http source: BTC/USDT: HTTP 503: Internal error. (code -1001, HTTP 503),"
                                " after 3 attempt(s)")
    assert len(binance_fake.requests) == 3
    assert breaker_state(redis_stack) == ("closed", 1)


def test_429_waits_for_retry_after(redis_stack, binance_fake):
    binance_fake.then(Reply(429, body={"code": -1003, "msg": "Too many requests."}, headers={"Retry-After": "1"}))
    sleeps = Sleeps()
    ts, _ = fetch(redis_stack, binance_fake, sleep=sleeps)
    assert len(ts) == 10 and sleeps == [1.0]
    first, second = binance_fake.requests
    assert second.at - first.at >= 1.0
    assert breaker_state(redis_stack) == ("closed", 0)


def test_429_asking_for_too_long_opens_the_breaker_at_once(redis_stack, binance_fake):
    binance_fake.then(Reply(429, body={"code": -1003, "msg": "Too many requests."}, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimited, match=r"rate limited \(HTTP 429, retry after 120s\)"):
        fetch(redis_stack, binance_fake)
    assert len(binance_fake.requests) == 1
    found = breaker.state(redis_stack.redis, redis_stack.keys, binance.SOURCE)
    assert (found["state"], found["retry_at"]) == ("open", NOW + 120)
    with pytest.raises(SourceUnavailable, match="circuit breaker open"):
        fetch(redis_stack, binance_fake, now=NOW + 119)
    assert len(binance_fake.requests) == 1
    assert len(fetch(redis_stack, binance_fake, now=NOW + 120)[0]) == 10
    assert breaker_state(redis_stack) == ("closed", 0)


def test_a_ban_opens_the_breaker_for_the_ban(redis_stack, binance_fake):
    binance_fake.then(Reply(418, body={"code": -1003, "msg": "Way too many requests; IP banned."},
                            headers={"Retry-After": "600"}))
    with pytest.raises(RateLimited, match=r"Binance banned this IP \(HTTP 418\), retry after 600s"):
        fetch(redis_stack, binance_fake)
    assert breaker.state(redis_stack.redis, redis_stack.keys, binance.SOURCE)["retry_at"] == NOW + 600
    assert len(binance_fake.requests) == 1


def test_the_breaker_opens_after_repeated_failures_and_closes_after_a_good_probe(redis_stack, binance_fake):
    binance_fake.always = Reply(500, body={"code": -1001, "msg": "Internal error."})
    for i in range(3):
        with pytest.raises(SourceUnavailable, match="HTTP 500"):
            fetch(redis_stack, binance_fake, retries=0, now=NOW + i)
    assert breaker_state(redis_stack) == ("open", 3) and len(binance_fake.requests) == 3
    with pytest.raises(SourceUnavailable) as error:  # no call while open
        fetch(redis_stack, binance_fake, retries=0, now=NOW + 3)
    assert str(error.value) == ("http source: circuit breaker open after 3 failures (next try at"
                                " 2026-01-15T00:00:32+00:00); BTC/USDT not fetched")
    assert len(binance_fake.requests) == 3
    # the probe after the cooldown fails: open again, for another cooldown
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        fetch(redis_stack, binance_fake, retries=0, now=NOW + 32)
    assert breaker_state(redis_stack) == ("open", 4) and len(binance_fake.requests) == 4
    binance_fake.always = None  # the API is back
    assert breaker.allow(redis_stack.redis, redis_stack.keys, binance.SOURCE, now=NOW + 62)  # another worker's probe
    with pytest.raises(SourceUnavailable, match=r"circuit breaker half_open after 4 failures \(another worker's probe"):
        fetch(redis_stack, binance_fake, retries=0, now=NOW + 62)
    breaker.record_failure(redis_stack.redis, redis_stack.keys, binance.SOURCE, now=NOW + 63)  # and it failed
    with pytest.raises(SourceUnavailable, match="circuit breaker open"):
        fetch(redis_stack, binance_fake, retries=0, now=NOW + 92)
    assert len(binance_fake.requests) == 4
    ts, _ = fetch(redis_stack, binance_fake, retries=0, now=NOW + 93)  # our probe
    assert len(ts) == 10 and breaker_state(redis_stack) == ("closed", 0)
    assert len(fetch(redis_stack, binance_fake, retries=0, now=NOW + 93)[0]) == 10


def test_an_invalid_symbol_is_a_clear_error_and_not_a_breaker_failure(redis_stack, binance_fake):
    with pytest.raises(SourceError) as error:
        fetch(redis_stack, binance_fake, symbol="FOO/BAR")
    assert not isinstance(error.value, SourceUnavailable)
    assert str(error.value) == "http source: FOO/BAR (FOOBAR): Invalid symbol. (code -1121, HTTP 400)"
    assert len(binance_fake.requests) == 1  # not retried
    assert breaker_state(redis_stack) == ("closed", 0)


@pytest.mark.parametrize("reply, message", [
    (Reply(body={"not": "klines"}), "unexpected klines (not a JSON array)"),
    (Reply(body=[[1, "1", "1", "1"]]), "unexpected klines (list index out of range)"),
    (Reply(body=[[T0_MS, "1", "1", "1", "-2", "1", T0_MS + 59_999]]), "close price that is not above zero"),
    (Reply(raw=b"<html>maintenance</html>"), "the response is not JSON"),
])
def test_a_response_that_is_not_klines_is_a_failure(redis_stack, binance_fake, reply, message):
    binance_fake.then(reply)
    with pytest.raises(SourceUnavailable, match=re.escape(message)):
        fetch(redis_stack, binance_fake)
    assert breaker_state(redis_stack) == ("closed", 1)


def test_nothing_listening_is_retried_then_unavailable(redis_stack, binance_fake):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binance_fake.url = f"http://127.0.0.1:{port}"
    with pytest.raises(SourceUnavailable, match=r"connection failed \(ConnectError.*after 3 attempt\(s\)"):
        fetch(redis_stack, binance_fake)


def test_the_price_agents_call_reads_the_url_from_the_environment(redis_stack, binance_fake, monkeypatch):
    monkeypatch.setenv("HTTP_SOURCE_URL", binance_fake.url)
    ts, closes = fetch_closes(redis_stack.redis, redis_stack.keys, "ETH-USDT", T0_US, T0_US + 4 * MIN_US, interval_s=60)
    assert ts.tolist() == [T0_US + k * MIN_US for k in range(5)]
    assert binance_fake.klines_requests()[0]["symbol"] == "ETHUSDT"


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.delenv("HTTP_SOURCE_URL", raising=False)
    assert binance.settings_from_env().url == "https://api.binance.com"
    monkeypatch.setenv("HTTP_SOURCE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_SOURCE_READ_TIMEOUT_S", "2.5")
    found = binance.settings_from_env()
    assert (found.url, found.read_timeout_s) == ("http://127.0.0.1:9", 2.5)
    monkeypatch.setenv("HTTP_SOURCE_RETRIES", "-1")
    with pytest.raises(ConfigError, match="HTTP_SOURCE_RETRIES"):
        binance.settings_from_env()
    monkeypatch.setenv("HTTP_SOURCE_RETRIES", "1")
    monkeypatch.setenv("HTTP_SOURCE_URL", "ftp://example")
    with pytest.raises(ConfigError, match="HTTP_SOURCE_URL"):
        binance.settings_from_env()
