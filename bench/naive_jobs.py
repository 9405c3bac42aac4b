"""The seeds' design, for comparison only: one job per symbol per agent per tick, one INSERT per row.

Each tick of a symbol is a chain price -> indicator -> bang, and the bang job enqueues
the symbol's next tick, so a symbol's ticks stay in order (the seeds relied on that).
The arithmetic is the same as the batched agents', so the bangs must be identical.
"""

from __future__ import annotations

import math
import os

import psycopg
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from agentsys.sources import synthetic

TABLES = """
CREATE TABLE IF NOT EXISTS naive_prices (symbol text, ts bigint, price float8, PRIMARY KEY (symbol, ts));
CREATE TABLE IF NOT EXISTS naive_indicators (symbol text, ts bigint, n int, seed float8,
    f float8, m float8, s float8, state int, PRIMARY KEY (symbol, ts));
CREATE TABLE IF NOT EXISTS naive_bangs (symbol text, ts bigint, from_state int, to_state int, PRIMARY KEY (symbol, ts));
"""
PERIODS = (9, 21, 55)
_conn: psycopg.Connection | None = None


def _db() -> psycopg.Connection:
    # "pooled": one connection per job process, reused by every query of the job
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return _conn


def _queue(name: str) -> Queue:
    return Queue(name, connection=Redis.from_url(os.environ["REDIS_URL"]), serializer=JSONSerializer)


def price(symbol: str, ts: int, step: int, last: int) -> None:
    value = float(synthetic.prices([symbol], __import__("numpy").array([ts], dtype="int64"))[0, 0])
    _db().execute("INSERT INTO naive_prices VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (symbol, ts, value))
    _queue("indicator").enqueue("bench.naive_jobs.indicator", symbol, ts, step, last)


def indicator(symbol: str, ts: int, step: int, last: int) -> None:
    db = _db()
    (p,) = db.execute("SELECT price FROM naive_prices WHERE symbol = %s AND ts = %s", (symbol, ts)).fetchone()
    prev = db.execute("SELECT n, seed, f, m, s FROM naive_indicators WHERE symbol = %s AND ts = %s",
                      (symbol, ts - step)).fetchone()
    n, seed, emas = (prev[0], prev[1], list(prev[2:])) if prev else (0, 0.0, [math.nan] * 3)
    if n < PERIODS[2]:
        seed += p
    for k, period in enumerate(PERIODS):
        alpha = 2.0 / (period + 1.0)
        if n >= period:
            emas[k] = (p - emas[k]) * alpha + emas[k]
        elif n + 1 == period:
            emas[k] = seed / period
    n += 1
    f, m, s = (None if math.isnan(e) else e for e in emas)
    state = -1 if None in (f, m, s) else (1 if f > m > s else 2 if f < m < s else 0)
    db.execute("INSERT INTO naive_indicators VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
               (symbol, ts, n, seed, *(math.nan if e is None else e for e in (f, m, s)), state))
    _queue("bang").enqueue("bench.naive_jobs.bang", symbol, ts, step, last)


def bang(symbol: str, ts: int, step: int, last: int) -> None:
    db = _db()
    (state,) = db.execute("SELECT state FROM naive_indicators WHERE symbol = %s AND ts = %s", (symbol, ts)).fetchone()
    prev = db.execute("SELECT state FROM naive_indicators WHERE symbol = %s AND ts = %s",
                      (symbol, ts - step)).fetchone()
    if prev and prev[0] >= 0 and state != prev[0] and state in (1, 2):
        db.execute("INSERT INTO naive_bangs VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                   (symbol, ts, prev[0], state))
    if ts < last:
        _queue("price").enqueue("bench.naive_jobs.price", symbol, ts + step, step, last)
