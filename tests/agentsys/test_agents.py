"""The agent registry: the lists that derive from it agree with it, and so does the SQL."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
from pathlib import Path

from agentsys import agents, keys, tasks, triggers
from tests.support.procs import VENV_BIN

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "services" / "worker"


def test_the_registry_is_consistent():
    assert len(set(agents.NAMES)) == len(agents.AGENTS)
    assert len({a.lock_class for a in agents.AGENTS}) == len(agents.AGENTS), "lock classes must differ"
    for i, agent in enumerate(agents.AGENTS):
        assert agent.upstream is None or agent.upstream in agents.NAMES[:i], "upstreams come first (lock order)"
        assert (WORKER / (agent.module.replace(".", "/") + ".py")).is_file(), agent.module
        assert callable(getattr(importlib.import_module(agent.module), agent.func.rpartition(".")[2]))
    assert agents.first().name == "price"
    assert [agents.downstream(n) for n in agents.NAMES] == [("indicator",), ("bang",), ()]


def test_the_lists_derive_from_it():
    from worker import guards
    from worker.agents.base import LOCK_CLASS
    from worker.jobs import control
    from worker.settings import WorkerSettings

    assert keys.AGENTS == agents.NAMES
    assert keys.QUEUES[: len(agents.AGENTS)] == tuple(a.queue for a in agents.AGENTS)
    assert {a: triggers.AGENT_FUNCS[a] for a in agents.NAMES} == {a.name: a.func for a in agents.AGENTS}
    assert {a: triggers.QUEUE_OF[a] for a in agents.NAMES} == {a.name: a.queue for a in agents.AGENTS}
    assert LOCK_CLASS == {a.name: a.lock_class for a in agents.AGENTS}
    assert {a.func for a in agents.AGENTS} <= guards.registered_functions()
    assert {t.func for t in tasks.TASK_TYPES.values()} <= guards.registered_functions()
    preload = WorkerSettings.model_fields["worker_preload"].default.split(",")
    assert {a.module for a in agents.AGENTS} | {"worker.jobs.ingest", "worker.jobs.control"} <= set(preload)
    assert {a.name: a.breaker_sources for a in agents.AGENTS if a.breaker_sources} == {"price": ("synthetic", "http")}
    assert set(control.LAG_QUERIES) == {"indicator", "bang"} == set(control.SWEPT)


def test_the_check_on_progress_agent_allows_exactly_the_agents(stack):
    with stack.db() as conn:
        (definition,) = conn.execute(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            " WHERE t.relname = 'progress' AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%agent%'"
        ).fetchone()
    assert sorted(re.findall(r"'(\w+)'::text", definition)) == sorted(agents.NAMES), definition


def test_agents_do_not_import_each_other():
    modules = {a.module: a.name for a in agents.AGENTS}
    for path in (WORKER / "worker").rglob("*.py"):
        module = ".".join(path.relative_to(WORKER).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                     for a in n.names}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        others = sorted((imported & set(modules)) - {module})
        assert not others, f"{module} imports the agent module(s) {others}: move what they share to a neutral module"


def test_agentsys_registry_prints_it_as_json():
    done = subprocess.run([str(VENV_BIN / "agentsys-registry"), "--json"], capture_output=True, text=True,
                          timeout=60, check=True)
    data = json.loads(done.stdout)
    assert data == json.loads(json.dumps(agents.export()))
    assert [a["name"] for a in data["agents"]] == list(agents.NAMES)
    assert data["agents"][0] | {"lag_query": None} == {
        "name": "price", "queue": "price", "low_queue": "price.low", "func": "worker.agents.price.run",
        "module": "worker.agents.price", "lock_class": 1, "upstream": None, "downstream": ["indicator"],
        "breaker_sources": ["synthetic", "http"], "lag_query": None}
    assert data["control_queue"] == "control" and data["worker_queues"] == ["control", "bang", "indicator", "price"]
    human = subprocess.run([str(VENV_BIN / "agentsys-registry")], capture_output=True, text=True, timeout=60,
                           check=True).stdout.splitlines()
    assert [line.split()[0] for line in human] == list(agents.NAMES)
