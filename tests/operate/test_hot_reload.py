"""``make dev`` in a copy of the tree: editing the price agent restarts only the price workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from tests.support import wait
from tests.support.makerun import ROOT, make_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COPIED = ("Makefile", "pyproject.toml", "libs", "services", "clients", "scripts", "deploy")
MARKER = '''

# --- edited by the hot-reload test ---
_before_edit = run


def run(shard):
    result = _before_edit(shard)
    if isinstance(result, dict):
        result["reloaded"] = "v2"
        log.info("hot reload marker", shard=shard, reloaded="v2")
    return result
'''


def _copy_tree(to: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                                    "node_modules", "*.pyc")
    to.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, to / name, ignore=ignore)
        else:
            shutil.copy2(source, to / name)
    (to / ".venv").symlink_to(ROOT / ".venv")  # same interpreter and packages; PYTHONPATH picks the copy's code
    return to


def _marker_seen(log: Path) -> bool:
    for line in log.read_text(errors="replace").splitlines():
        if '"reloaded"' in line:
            try:
                if json.loads(line).get("reloaded") == "v2":
                    return True
            except ValueError:
                continue
    return False


def test_editing_the_price_agent_restarts_only_the_price_workers(stack, tmp_path):
    tree = _copy_tree(tmp_path / "tree")
    settings = {"REDIS_URL": stack.redis_url, "DATABASE_URL": stack.database_url, "KEY_PREFIX": stack.prefix,
                "WORKERS_PRICE": "1", "WORKERS_INDICATOR": "1", "WORKERS_BANG": "1", "DEMO_SYMBOLS": "10",
                "PRICE_INTERVAL_S": "1"}
    with make_run("dev", root=tree, **settings) as running:
        programs = ("worker-price-1", "worker-indicator-1", "worker-bang-1", "worker-control-1", "scheduler",
                    "orchestrator", "gateway")
        before = {p: running.pid(p) for p in programs}
        assert "redis" not in before and not (running.run_dir / "redis").exists()  # existing servers: none started
        reloader_log = running.run_dir / "logs" / "reloader.log"
        wait.until(lambda: reloader_log.exists() and '"watching"' in reloader_log.read_text(), timeout=30,
                   what="the reloader to watch the tree")
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            wait.until(lambda: _count(conn, "SELECT count(*) FROM task_runs WHERE type = 'run_agent'") >= 2,
                       timeout=60, what="the demo universe to tick")
            edited_at = conn.execute("SELECT now()").fetchone()[0]
        price = tree / "services" / "worker" / "worker" / "agents" / "price.py"
        price.write_text(price.read_text() + MARKER)
        wait.until(lambda: running.sup.state("worker-price-1") == "RUNNING"
                   and running.pid("worker-price-1") != before["worker-price-1"], timeout=60,
                   what="the price worker to restart")
        log = running.run_dir / "logs" / "worker-price-1.log"
        wait.until(lambda: _marker_seen(log), timeout=60, what="a price job to run the edited code")
        after = {p: running.pid(p) for p in programs}
        for program in programs[1:]:
            assert after[program] == before[program], f"{program} was restarted"
        assert "restarted" in reloader_log.read_text()
        # work in flight across the restart was finished or redone: every tick submitted before the
        # edit ends finished (none is left started), and the bang agent catches up with every price
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            wait.until(lambda: _count(conn, "SELECT count(*) FROM task_runs WHERE created_at < %s"
                                            " AND state <> 'finished'", (edited_at,)) == 0,
                       timeout=90, what="every task submitted before the reload to finish")
            wait.until(lambda: _count(conn, "SELECT count(*) FROM prices p WHERE p.ts <= %s AND NOT EXISTS"
                                            " (SELECT 1 FROM progress g WHERE g.agent = 'bang' AND g.symbol = p.symbol"
                                            " AND g.last_ts >= p.ts)", (edited_at,)) == 0,
                       timeout=90, what="the bang agent to cover every price stored before the reload")


def _count(conn: psycopg.Connection, query: str, args: tuple = ()) -> int:
    return int(conn.execute(query, args).fetchone()[0])
