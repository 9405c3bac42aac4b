"""The price agent over http symbols: a failing symbol is skipped (and counted), and heals on the next run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from agentsys import symbols, triggers
from agentsys.symbols import SymbolSpec
from tests.support.pipeline import drain
from tests.worker.sources.fake_binance import FlakyBinance


@pytest.fixture
def fake(stack, monkeypatch) -> Iterator[FlakyBinance]:
    server = FlakyBinance()
    monkeypatch.setenv("HTTP_SOURCE_URL", server.url)
    monkeypatch.setenv("HTTP_SOURCE_RETRIES", "0")
    try:
        yield server
    finally:
        server.close()


def _count(stack, symbol: str) -> int:
    with stack.db() as conn:
        return conn.execute("SELECT count(*) FROM prices WHERE symbol = %s", (symbol,)).fetchone()[0]


def _run_price_agent(stack) -> dict[str, Any]:
    job_id = triggers.trigger(stack.redis, stack.keys, "price", 0)
    assert job_id
    drain(stack)
    return Job.fetch(job_id, connection=stack.redis, serializer=JSONSerializer).return_value()


def test_a_failing_symbol_is_skipped_then_caught_up_by_the_next_run(stack, fake):
    with stack.db() as conn:
        symbols.add_symbols(conn, [SymbolSpec(symbol=s, source="http") for s in ("BTC/USDT", "ETH/USDT")])
        conn.commit()
    fake.down = {"ETHUSDT"}
    first = _run_price_agent(stack)
    assert first["skipped"] == 1 and first["ticks"] > 0, first
    assert _count(stack, "BTC/USDT") > 0 and _count(stack, "ETH/USDT") == 0
    fake.down = set()
    second = _run_price_agent(stack)
    assert "skipped" not in second, second
    assert _count(stack, "ETH/USDT") > 0  # its watermark never moved: the next run fetched its history
