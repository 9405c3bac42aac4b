"""CSV inputs generated with hypothesis through ``agentsys.replay.submit_replay``: either a clean
InputError and nothing written (no task_runs row, no staged_prices row, no job), or a complete
submission (exactly the parsed rows staged, one task, one job). Then through the pipeline:
an accepted file either lands whole or, refused by the append-only store, changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agentsys import replay, tasks
from agentsys.errors import InputError
from agentsys.sources.csvfile import parse_csv
from tests.support.pipeline import ALL_QUEUES, drain

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
GOOD_SYMBOLS = ["AAA", "BB.1", "C/D", "E_E", "F-1"]
BAD_SYMBOLS = ["aaa", "", " ", "TOO" * 12, "A B", "-A", "Ä", "A,B", '"Q"']


def _ts_cells(minute: int) -> st.SearchStrategy[str]:
    when = T0 + timedelta(minutes=minute)
    return st.sampled_from([
        when.isoformat(), when.strftime("%Y-%m-%dT%H:%M:%SZ"), when.strftime("%Y-%m-%d %H:%M:%S"),
        str(int(when.timestamp())), str(int(when.timestamp() * 1000)), f"{when.timestamp():.3f}",
    ])


BAD_TS = st.sampled_from(["", "yesterday", "2026-13-01", "20260302", "12", "1e20", "nan", "inf", "2026-03-02T25:00",
                          "-1700000000", "0x10", "1.7e9.5"])
GOOD_PRICE = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False).map(repr)
BAD_PRICE = st.sampled_from(["", "0", "-1", "nan", "inf", "-inf", "abc", "1e400", "1,5", "0.0", "1e-400", "$3"])


@st.composite
def rows(draw, *, bad: bool, base: int = 0) -> list[tuple[str, str, str]]:
    """Up to 25 rows, minutes from ``base`` on; with ``bad``, about one in six has one bad cell."""
    n = draw(st.integers(min_value=0, max_value=25))
    out = []
    for _ in range(n):
        minute = base + draw(st.integers(min_value=0, max_value=300))
        symbol, ts, price = draw(st.sampled_from(GOOD_SYMBOLS)), draw(_ts_cells(minute)), draw(GOOD_PRICE)
        if bad and draw(st.integers(0, 5)) == 0:
            which = draw(st.integers(0, 2))
            symbol = draw(st.sampled_from(BAD_SYMBOLS)) if which == 0 else symbol
            ts = draw(BAD_TS) if which == 1 else ts
            price = draw(BAD_PRICE) if which == 2 else price
        out.append((symbol, ts, price))
    if out and draw(st.integers(0, 3)) == 0:  # a duplicate of a row, same or other price
        symbol, ts, price = draw(st.sampled_from(out))
        out.append((symbol, ts, draw(st.sampled_from([price, "1234.5"]))))
    return out


GOOD_HEADERS = [["symbol", "ts", "price"], ["Symbol", " Date ", "Close"], ["price", "symbol", "timestamp", "volume"],
                ["symbol", "time", "close", "note"]]
BAD_HEADERS = [["symbol", "price"], ["ts", "price"], ["symbol", "ts", "price", "close"],
               ["symbol", "date", "time", "price"], [], ["sym", "ts", "price"]]
HEADERS = st.one_of(*[st.sampled_from(GOOD_HEADERS)] * 4, st.sampled_from(BAD_HEADERS))


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n') else cell


@st.composite
def csv_texts(draw, *, clean: bool = False, base: int = 0) -> str:
    header = draw(st.sampled_from(GOOD_HEADERS) if clean else HEADERS)
    body = draw(rows(bad=not clean and draw(st.booleans()), base=base))
    lines = [",".join(header)] if header else []
    for symbol, ts, price in body:
        cells = {"symbol": symbol, "ts": ts, "date": ts, "time": ts, "timestamp": ts, "price": price,
                 "close": price}
        lines.append(",".join(_quote(cells.get(h.strip().lower(), "x")) for h in header) if header else symbol)
        if draw(st.integers(0, 9)) == 0:
            lines.append("")  # blank lines are allowed
    text = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    return ("\ufeff" if draw(st.integers(0, 4)) == 0 else "") + text


def _state(stack, conn: psycopg.Connection) -> tuple[int, int, int]:
    row = conn.execute("SELECT (SELECT count(*) FROM task_runs), (SELECT count(*) FROM staged_prices)").fetchone()
    conn.rollback()
    jobs = sum(tasks.queue(stack.redis, q).count for q in ALL_QUEUES)
    return int(row[0]), int(row[1]), jobs


def _staged(conn: psycopg.Connection, task_id: str) -> list[tuple[str, int, float]]:
    got = conn.execute("SELECT symbol, (extract(epoch FROM ts) * 1000000)::int8, price FROM staged_prices"
                       " WHERE task_id = %s ORDER BY symbol, ts", (task_id,)).fetchall()
    conn.rollback()
    return [(s, int(t), float(p)) for s, t, p in got]


def _expected(text: str) -> list[tuple[str, int, float]]:
    parsed = parse_csv(text)
    return sorted(zip(parsed.symbols.tolist(), parsed.ts.tolist(), parsed.price.tolist(), strict=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(text=csv_texts())
def test_a_submission_is_refused_whole_or_staged_whole(stack, text):
    with stack.db() as conn:
        before = _state(stack, conn)
        try:
            run = replay.submit_replay(stack.redis, conn, stack.keys, csv_text=text)
        except InputError as error:
            conn.rollback()
            message = str(error)
            event("refused: " + message.split(":")[0][:40])
            assert message and "\n" not in message and "Traceback" not in message, message
            assert len(message) < 4000, len(message)
            assert _state(stack, conn) == before, "a refused file wrote something"
            return
        event("accepted")
        after = _state(stack, conn)
        assert after == (before[0] + 1, before[1] + len(parse_csv(text)), before[2] + 1)
        assert _staged(conn, run.id) == _expected(text)
        assert tasks.get(conn, run.id).state == "queued"
        conn.rollback()
    stack.redis.flushdb()  # the next example starts with empty queues (the staged rows stay, counted)


def _prices(conn: psycopg.Connection) -> list[tuple[str, int, float]]:
    got = conn.execute("SELECT symbol, (extract(epoch FROM ts) * 1000000)::int8, price FROM prices"
                       " ORDER BY symbol, ts").fetchall()
    conn.rollback()
    return [(s, int(t), float(p)) for s, t, p in got]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_an_accepted_file_lands_whole_or_not_at_all(stack, data):
    """Files over the same symbols, each in its own time window, one after the other, in time order
    or not: each one that the pipeline takes adds exactly its rows; one that the append-only store
    refuses (it comes before a symbol's newest price, with other prices) adds nothing."""
    n = data.draw(st.integers(min_value=1, max_value=4))
    order = data.draw(st.one_of(st.just(list(range(n))), st.permutations(range(n))))
    texts = [data.draw(st.one_of(csv_texts(clean=True, base=k * 400), csv_texts(base=k * 400))) for k in order]
    for text in texts:
        with stack.db() as conn:
            try:
                run = replay.submit_replay(stack.redis, conn, stack.keys, csv_text=text)
            except InputError:
                conn.rollback()
                continue
            before = _prices(conn)
            drain(stack)
            done = tasks.get(conn, run.id)
            conn.rollback()
            after = _prices(conn)
            assert done.state in ("finished", "failed"), done
            event(f"ingest {done.state}")
            if done.state == "failed":
                assert after == before, "a refused file wrote prices"
                assert done.error and "\n" not in done.error and "append-only" in done.error, done.error
            else:
                mine = _expected(text)
                assert set(mine) <= set(after), "an accepted file did not land whole"
                assert sorted(set(after) - set(before)) == sorted(set(mine) - set(before))
            assert conn.execute("SELECT count(*) FROM staged_prices WHERE task_id = %s",
                                (run.id,)).fetchone()[0] == 0
            conn.rollback()
    with stack.db() as conn:  # every stored price is finite, positive, and has its indicator row
        bad = conn.execute("SELECT count(*) FROM prices WHERE NOT (price > 0)").fetchone()[0]
        missing = conn.execute("SELECT count(*) FROM prices p LEFT JOIN indicators i USING (symbol, ts)"
                               " WHERE i.symbol IS NULL").fetchone()[0]
    assert bad == 0 and missing == 0
