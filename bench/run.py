"""``make bench``: run every benchmark, print a table, append to .bench/results.jsonl."""

from __future__ import annotations

import importlib
import os
import sys

SUITES = ["bench.pipeline", "bench.api", "bench.gateway", "bench.live"]
"""Benchmark modules, each with a main(); BENCH=name,... picks some (``live`` runs only when picked)."""
DEFAULT = ["bench.pipeline", "bench.api", "bench.gateway"]
"""What a bare ``make bench`` runs (about ten minutes); ``BENCH=live`` takes longer."""


def main() -> int:
    wanted = [s for s in os.environ.get("BENCH", "").split(",") if s]
    for suite in SUITES:
        if (wanted and suite.split(".")[-1] not in wanted) or (not wanted and suite not in DEFAULT):
            continue
        print(f"== {suite}", flush=True)
        importlib.import_module(suite).main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
