"""Every exit status has one meaning, and the README's table lists each one."""

from __future__ import annotations

import re
from pathlib import Path

from agentsys import exitcodes

README = Path(__file__).resolve().parents[2] / "README.md"


def _codes() -> dict[str, int]:
    return {name: value for name, value in vars(exitcodes).items() if name.startswith("RET_")}


def test_each_status_has_one_name():
    codes = _codes()
    assert len(set(codes.values())) == len(codes), codes
    assert codes["RET_OK"] == 0 and codes["RET_USAGE"] == 2  # argparse's own status for a bad command line


def test_the_readme_lists_every_status():
    rows = dict(re.findall(r"^\| (\d+) \| `(RET_[A-Z_]+)` \|", README.read_text(), re.M))
    assert {name: int(value) for value, name in rows.items()} == _codes()
