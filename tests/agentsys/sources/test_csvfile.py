from __future__ import annotations

import numpy as np
import pytest

from agentsys.errors import InputError
from agentsys.sources.csvfile import parse_csv, parse_ts

DAY_US = 86_400 * 1_000_000
JAN1_2024 = 1_704_067_200_000_000


def test_header_aliases_extra_columns_and_unsorted_input():
    rows = parse_csv("Date , Symbol,Open,Close\n2024-01-02,AAPL,1,10\n2024-01-01,AAPL,1,9\n2024-01-01,MSFT,1,3\n")
    assert rows.symbols.tolist() == ["AAPL", "AAPL", "MSFT"]
    assert rows.ts.tolist() == [JAN1_2024, JAN1_2024 + DAY_US, JAN1_2024]
    assert rows.price.tolist() == [9.0, 10.0, 3.0]


@pytest.mark.parametrize("cell, want", [
    ("2024-01-01", JAN1_2024),
    ("2024-01-01T00:00:00Z", JAN1_2024),
    ("2024-01-01T01:00:00+01:00", JAN1_2024),
    ("2024-01-01 00:00:00.5", JAN1_2024 + 500_000),
    ("1704067200", JAN1_2024),
    ("1704067200000", JAN1_2024),  # milliseconds
])
def test_timestamp_forms(cell, want):
    assert parse_ts(cell) == want


def test_uneven_spacing_is_kept():
    rows = parse_csv("symbol,ts,price\nA,1700000000,1\nA,1700000007,2\nA,1700003600,3\n")
    assert np.diff(rows.ts).tolist() == [7_000_000, 3_593_000_000]


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("\n\n", "the file is empty"),
    ("symbol,ts,price\n", "header but no rows"),
    ("sym,when,value\nA,1,1\n", "line 1: missing column(s): symbol, ts (or date, time, timestamp), price (or close)"),
    ("symbol,price\nA,1\n", "missing column(s): ts"),
])
def test_structural_errors(text, message):
    with pytest.raises(InputError) as error:
        parse_csv(text)
    assert message in str(error.value)


def test_bad_rows_are_listed_with_line_numbers_and_nothing_is_returned():
    text = ("symbol,ts,price\n"
            "A,2024-01-01,1\n"        # 2 ok
            "\n"                       # 3 blank: ignored
            "A,yesterday,1\n"          # 4
            "a,2024-01-02,1\n"         # 5 lower case
            "B,2024-01-01,-3\n"        # 6
            "B,2024-01-02,abc\n"       # 7
            "B,2024-01-03,nan\n"       # 8
            "C,2024-01-01\n")          # 9 short
    with pytest.raises(InputError) as error:
        parse_csv(text)
    message = str(error.value)
    assert message.startswith("6 bad row(s), nothing was written")
    for line in (4, 5, 6, 7, 8, 9):
        assert f"line {line}:" in message
    assert "line 2:" not in message and "line 3:" not in message


def test_duplicates_identical_collapse_conflicting_name_both_lines():
    rows = parse_csv("symbol,ts,price\nA,2024-01-01,1\nA,2024-01-01,1\n")
    assert len(rows) == 1
    with pytest.raises(InputError) as error:
        parse_csv("symbol,ts,price\nA,2024-01-01,1\nB,2024-01-01,1\nA,2024-01-01,2\n")
    assert "line 4: A at the same ts as line 2 with another price" in str(error.value)


def test_many_errors_are_capped():
    text = "symbol,ts,price\n" + "".join(f"A,{i},x\n" for i in range(50))
    with pytest.raises(InputError) as error:
        parse_csv(text)
    assert "50 bad row(s)" in str(error.value) and "... and 30 more" in str(error.value)


def test_bom_quotes_and_a_big_file():
    assert parse_csv('\ufeff"symbol","ts","price"\n"A","2024-01-01","1.5"\n').price.tolist() == [1.5]
    text = "symbol,ts,price\n" + "".join(f"S{i % 100},{1_700_000_000 + i // 100},{1 + i % 7}\n" for i in range(200_000))
    rows = parse_csv(text)
    assert len(rows) == 200_000 and rows.symbols[0] == "S0"
