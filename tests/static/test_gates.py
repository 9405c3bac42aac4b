"""The gates agree: CI runs ``make lint``, and pre-commit runs what ``make lint`` runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _make_variable(name: str) -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} = (.*)$", text, re.M)
    assert match, name
    return match.group(1).split()


def test_ci_runs_make_lint_before_the_tests():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("make lint") < lines.index("make test")


def test_pre_commit_runs_the_same_checks_as_make_lint():
    hooks = [h for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
             for h in repo["hooks"]]
    assert all(h["language"] == "system" and h["entry"].startswith(".venv/bin/") for h in hooks)  # nothing fetched
    entries = {h["entry"].removeprefix(".venv/bin/") for h in hooks}
    wanted = {"ruff check " + " ".join(_make_variable("RUFF_PATHS")),
              *("mypy --strict " + p for p in _make_variable("MYPY_STRICT")),
              *("mypy " + p for p in _make_variable("MYPY_PACKAGES"))}
    assert entries == wanted


def test_no_phony_target_without_a_rule():
    text = (ROOT / "Makefile").read_text()
    phony = {t for line in re.findall(r"^\.PHONY: (.*)$", text, re.M) for t in line.split()}
    rules = set(re.findall(r"^([a-z][a-z-]*):", text, re.M))
    assert phony <= rules, phony - rules
