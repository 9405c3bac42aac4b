from __future__ import annotations

import numpy as np
import pytest

from agentsys.errors import InputError
from agentsys.sources.csvfile import PriceRows, parse_csv, parse_csv_file, parse_ts

S = 1_000_000
DAY = 86_400 * S
JAN1 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z


def refused(text: str) -> str:
    with pytest.raises(InputError) as error:
        parse_csv(text)
    return str(error.value)


def test_header_aliases_case_spaces_extra_columns_and_sorting():
    rows = parse_csv(" Date ,SYMBOL,Open, Close \n2024-01-02,MSFT,1,10\n2024-01-02,AAPL,1,9\n2024-01-01,AAPL,1,8\n")
    assert isinstance(rows, PriceRows) and len(rows) == 3
    assert rows.symbols.tolist() == ["AAPL", "AAPL", "MSFT"]
    assert rows.ts.tolist() == [JAN1, JAN1 + DAY, JAN1 + DAY]
    assert rows.price.tolist() == [8.0, 9.0, 10.0]
    assert rows.ts.dtype == np.int64 and rows.price.dtype == np.float64


@pytest.mark.parametrize("name", ["ts", "date", "time", "timestamp", "TimeStamp"])
@pytest.mark.parametrize("price", ["price", "close", "CLOSE"])
def test_every_accepted_column_name(name, price):
    rows = parse_csv(f"volume,{name},symbol,{price}\n7,2024-01-01,A,1.5\n")
    assert (rows.symbols.tolist(), rows.ts.tolist(), rows.price.tolist()) == (["A"], [JAN1], [1.5])


@pytest.mark.parametrize("cell, want", [
    ("2024-01-01", JAN1),  # a date is midnight UTC
    ("2024-01-01T00:00:00", JAN1),  # no zone is UTC
    ("2024-01-01 00:00:00", JAN1),
    ("2024-01-01T00:00:00Z", JAN1),
    ("2024-01-01T01:00:00+01:00", JAN1),
    ("2023-12-31T19:00:00-05:00", JAN1),
    ("2024-01-01T00:00:00.5", JAN1 + 500_000),
    ("2024-01-01T00:00:00.000001Z", JAN1 + 1),
    ("1704067200", JAN1),  # epoch seconds
    ("1704067200.25", JAN1 + 250_000),
    ("1704067200000", JAN1),  # >= 1e11: epoch milliseconds
    ("1704067200123", JAN1 + 123_000),
    ("1000000000", 1_000_000_000 * S),  # the smallest epoch in seconds
    ("100000000000", 100_000_000_000 * 1000),  # the smallest in milliseconds (1973)
    (" 2024-01-01 ", JAN1),
])
def test_timestamp_forms(cell, want):
    assert parse_ts(cell) == want


@pytest.mark.parametrize("cell, reason", [
    ("", "empty timestamp"),
    ("yesterday", "bad timestamp 'yesterday'"),
    ("2024-13-01", "bad timestamp '2024-13-01'"),
    ("20240101", "out of range"),  # a compact date, not epoch seconds in 1970
    ("999999999", "out of range"),
    ("100000000000000", "out of range"),  # microseconds are not guessed
    ("-5", "out of range"),
    ("nan", "out of range"),
])
def test_bad_timestamps(cell, reason):
    with pytest.raises(ValueError) as error:
        parse_ts(cell)
    assert reason in str(error.value)


def test_uneven_spacing_is_kept():
    rows = parse_csv("symbol,ts,price\nA,1700000000,1\nA,1700000007,2\nA,1700003600,3\n")
    assert np.diff(rows.ts).tolist() == [7 * S, 3593 * S]


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty: expected a header line with symbol, ts and price columns"),
    ("\n \n,,\n", "the file is empty"),
    ("\ufeff", "the file is empty"),
    ("symbol,ts,price\n", "the file has a header but no rows"),
    ("\n\nsymbol,ts,price", "the file has a header but no rows"),
    ("symbol,ts,price\n\n\n", "the file has a header but no rows"),
    ("symbol,ts,price\n,,\n ,  , \n", "the file has a header but no rows"),
])
def test_empty_files(text, message):
    assert refused(text).startswith(message)


@pytest.mark.parametrize("text, message", [
    ("sym,when,value\nA,1,1\n",
     "line 1: missing column symbol; missing column ts (one of: ts, date, time, timestamp);"
     " missing column price (one of: price, close); found: 'sym', 'when', 'value'"),
    ("symbol,price\nA,1\n", "line 1: missing column ts (one of: ts, date, time, timestamp); found: 'symbol', 'price'"),
    ("symbol,ts\nA,1\n", "line 1: missing column price (one of: price, close); found: 'symbol', 'ts'"),
    ("date,time,symbol,close\n2024-01-01,09:30,A,1\n",
     "line 1: 2 ts columns (date, time): keep one; found: 'date', 'time', 'symbol', 'close'"),
    ("symbol,ts,price,close\nA,2024-01-01,1,1\n", "line 1: 2 price columns (price, close): keep one"),
    ("\n\nsymbol,price\n", "line 3: missing column ts"),  # the header's own line
])
def test_missing_or_ambiguous_columns_name_them(text, message):
    assert refused(text).startswith(message)


def test_bad_rows_are_listed_with_their_line_numbers_and_nothing_is_returned():
    text = ("symbol,ts,price\n"      # 1
            "A,2024-01-01,1\n"       # 2 ok
            "\n"                     # 3 blank: ignored
            "A,yesterday,1\n"        # 4
            "a,2024-01-02,1\n"       # 5 lower case
            "B,2024-01-01,-3\n"      # 6
            "B,2024-01-02,abc\n"     # 7
            "B,2024-01-03,nan\n"     # 8
            "C,2024-01-01\n"         # 9 short
            "D E,2024-01-01,1\n"     # 10
            " ,2024-01-01,1\n"       # 11
            "B,2024-01-04,0\n"       # 12
            "B,2024-01-05,inf\n"     # 13
            "C,2024-01-01,1\n")      # 14 ok
    assert refused(text) == (
        "10 bad row(s), nothing was written: "
        "line 4: bad timestamp 'yesterday' (use ISO 8601, YYYY-MM-DD or epoch seconds); "
        "line 5: symbol 'a' must be upper case (A); "
        "line 6: price must be a finite number above zero, not '-3'; "
        "line 7: bad price 'abc'; "
        "line 8: price must be a finite number above zero, not 'nan'; "
        "line 9: expected at least 3 columns, found 2; "
        "line 10: bad symbol 'D E' (1-32 characters of A-Z 0-9 . _ / -, starting with a letter or digit); "
        "line 11: empty symbol; "
        "line 12: price must be a finite number above zero, not '0'; "
        "line 13: price must be a finite number above zero, not 'inf'")


def test_lower_case_is_refused_not_changed_and_spaces_are_stripped():
    assert refused("symbol,ts,price\nbtc/usdt,2024-01-01,1\n").endswith("line 2: symbol 'btc/usdt' must be upper case"
                                                                        " (BTC/USDT)")
    rows = parse_csv("symbol,ts,price\n BTC/USDT ,2024-01-01, 2.5 \nBTC/USDT,2024-01-02,3\n")
    assert rows.symbols.tolist() == ["BTC/USDT", "BTC/USDT"] and rows.price.tolist() == [2.5, 3.0]


def test_a_symbol_too_long_for_the_table_is_refused():
    assert "line 2: bad symbol" in refused(f"symbol,ts,price\n{'A' * 33},2024-01-01,1\n")
    assert len(parse_csv(f"symbol,ts,price\n{'A' * 32},2024-01-01,1\n")) == 1


def test_identical_duplicates_collapse():
    rows = parse_csv("symbol,ts,price\nA,2024-01-01,1\nA,2024-01-01T00:00:00Z,1.0\nA,1704067200,1\nB,2024-01-01,1\n")
    assert rows.symbols.tolist() == ["A", "B"] and rows.ts.tolist() == [JAN1, JAN1]


def test_conflicting_duplicates_name_both_lines():
    message = refused("symbol,ts,price\nA,2024-01-01,1\nB,2024-01-01,1\nA,2024-01-01,1\nA,1704067200000,2\n")
    assert message == ("1 bad row(s), nothing was written: line 5: A at 2024-01-01T00:00:00Z repeats line 2"
                       " with another price (2.0 vs 1.0)")


def test_conflicts_and_bad_rows_are_reported_together_in_line_order():
    message = refused("symbol,ts,price\nA,2024-01-01,1\nA,2024-01-01,2\nA,bad,1\n")
    assert message.index("line 3: A at") < message.index("line 4: bad timestamp")
    assert message.startswith("2 bad row(s)")


def test_many_errors_are_capped_at_twenty():
    text = "symbol,ts,price\n" + "".join(f"A,{1_700_000_000 + i},x\n" for i in range(50))
    message = refused(text)
    assert message.startswith("50 bad row(s), nothing was written: line 2: bad price 'x'")
    assert "line 21: bad price" in message and "line 22:" not in message
    assert message.endswith("; ... and 30 more")
    assert len(message.splitlines()) == 1  # one line for agentctl's stderr


def test_bom_crlf_quotes_and_blank_lines():
    text = '\ufeff"symbol","ts","price"\r\n\r\n"A","2024-01-01","1.5"\r\n  \r\n"B",2024-01-01,"2,5"\r\n'
    assert refused(text) == "1 bad row(s), nothing was written: line 5: bad price '2,5'"
    rows = parse_csv('\ufeffsymbol,ts,price,note\r\n"A","2024-01-01","1.5","x, y"\r\n\r\nB,2024-01-01,2\r\n')
    assert rows.symbols.tolist() == ["A", "B"] and rows.price.tolist() == [1.5, 2.0]


def test_a_quoted_field_over_two_lines_keeps_later_line_numbers_right():
    text = 'symbol,ts,price,note\nA,2024-01-01,1,"two\nlines"\nA,2024-01-02,x,\n'
    assert refused(text).endswith("line 4: bad price 'x'")


@pytest.mark.parametrize("text, message", [
    ('symbol,ts,price\nA,2024-01-01,1\nA,2024-01-02,"1\nA,2024-01-03,1\n', "line 3: bad CSV: unexpected end of data"),
    ('symbol,ts,price\nA,2024-01-01,"1"x\n', "line 2: bad CSV: ',' expected after '\"'"),
])
def test_broken_quoting_is_refused_with_its_line(text, message):
    assert refused(text) == message


def test_parse_csv_file(tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes("\ufeffsymbol,ts,price\nA,2024-01-01,1\n".encode())
    assert parse_csv_file(good).symbols.tolist() == ["A"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"symbol,ts,price\nA\xe9,2024-01-01,1\n")
    with pytest.raises(InputError, match=r"latin.csv: not UTF-8 text \(invalid continuation byte at byte 17\)"):
        parse_csv_file(latin)
    with pytest.raises(InputError, match="missing.csv: No such file or directory"):
        parse_csv_file(tmp_path / "missing.csv")


def test_a_200k_row_file_takes_the_fast_path_and_matches_the_slow_one():
    n = 200_000
    lines = [f"S{i % 100},{1_700_000_000 + (n - i) // 100},{1 + i % 7}" for i in range(n)]
    rows = parse_csv("symbol,ts,price\n" + "\n".join(lines) + "\n")
    assert len(rows) == n and rows.symbols[0] == "S0" and rows.symbols[-1] == "S99"
    order = np.lexsort((rows.ts, rows.symbols.astype(str)))
    assert (order == np.arange(n)).all()  # sorted by (symbol, ts)
    # one blank-cell row sends the file to the row-by-row path, which must agree
    slow = parse_csv("symbol,ts,price\n" + "\n".join(lines[:5000]) + "\n,,\n")
    fast = parse_csv("symbol,ts,price\n" + "\n".join(lines[:5000]) + "\n")
    assert slow.symbols.tolist() == fast.symbols.tolist()
    assert slow.ts.tolist() == fast.ts.tolist() and slow.price.tolist() == fast.price.tolist()
    # an error on the last line of a big file is found, with its line number
    assert refused("symbol,ts,price\n" + "\n".join(lines) + "\nS1,1700000000,-1\n").endswith(
        f"line {n + 2}: price must be a finite number above zero, not '-1'")
