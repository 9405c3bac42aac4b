"""Which of our intervals the http source can build from Binance klines, and the refusal of the rest."""

from __future__ import annotations

import pytest

from agentsys.sources import SourceError, breaker
from worker.sources import binance
from worker.sources.binance import HttpSourceSettings, UnsupportedInterval, fetch_closes

T0_US = 1_767_571_200_000_000  # 2026-01-05T00:00:00Z


@pytest.mark.parametrize(("interval_s", "kline"), [
    (1, ("1s", 1)), (5, ("1s", 1)), (1000, ("1s", 1)), (1020, ("1m", 60)), (3600, ("1h", 3600)),
    (5400, ("30m", 1800)), (86_400, ("1d", 86_400)),
])
def test_intervals_built_from_whole_klines(interval_s, kline):
    assert binance.kline_interval(interval_s) == kline


@pytest.mark.parametrize("interval_s", [1001, 3601, 86_399, 0, -60])
def test_intervals_needing_more_than_a_page_of_klines_per_bar_are_refused(interval_s):
    with pytest.raises(UnsupportedInterval) as error:
        binance.kline_interval(interval_s)
    assert isinstance(error.value, SourceError)
    message = str(error.value)
    assert f"interval_s={interval_s} is not supported" in message
    assert "1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d" in message


def test_an_unsupported_interval_is_refused_before_any_request(redis_stack, binance_fake):
    settings = HttpSourceSettings(url=binance_fake.url, retries=0)
    with pytest.raises(UnsupportedInterval, match="interval_s=3601"):
        fetch_closes(redis_stack.redis, redis_stack.keys, "BTC/USDT", T0_US, T0_US + 3601 * 10**6 * 5,
                     interval_s=3601, settings=settings, now=T0_US / 1e6 + 86_400)
    assert binance_fake.requests == []
    found = breaker.state(redis_stack.redis, redis_stack.keys, binance.SOURCE)
    assert (found["state"], found["failures"]) == ("closed", 0)  # not the API's fault
