"""Hot reload for process mode (``make dev``): restart only the programs whose code changed.

A supervisord program itself (``reloader``). It watches the checkout's Python sources with
watchfiles and maps each change to programs:

- ``services/worker/worker/agents/<agent>.py`` of an agent -> the workers serving that
  agent's queue (``worker-N`` serve all agents, ``worker-<agent>-N`` one);
- any other worker module -> every worker (the scheduler's own modules: the scheduler);
- the shared library (``libs/agentsys``) -> every worker, the scheduler, the orchestrator
  and the gateway;
- ``services/orchestrator`` -> the orchestrator; ``services/gateway`` -> the gateway.

A restart is supervisord's stop (SIGTERM: RQ's warm shutdown finishes the job in flight;
one killed after the stop timeout is redone, since every job is safe to run again) and
start, done for all affected programs at once. uvicorn's own ``--reload`` would need the
apps as import-string factories; restarting the program gives the same result.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
from collections.abc import Iterable
from pathlib import Path

import watchfiles

from agentsys import agents
from agentsys.exitcodes import RET_OK
from agentsys.logging import configure_logging, get_logger
from scripts.run.supctl import Supervisor

AGENT_FILES = {f"services/worker/{a.module.replace('.', '/')}.py": a.name for a in agents.AGENTS}
"""Each agent's job module, as a path in the checkout (a change restarts only its workers)."""
WATCHED = ("libs/agentsys", "services/worker", "services/orchestrator", "services/gateway")
SCHEDULER_ONLY = {"scheduler.py", "schedule_timing.py", "leader.py"}
"""Worker-package modules only the scheduler imports."""
log = get_logger("reloader")


def serves(program: str, agent: str) -> bool:
    """True when the worker program runs ``agent``'s jobs (by the names process mode gives)."""
    return re.fullmatch(r"worker-\d+", program) is not None or program.startswith(f"worker-{agent}-")


def targets(changed: Iterable[Path], root: Path, programs: Iterable[str]) -> set[str]:
    """Programs to restart for these changed files."""
    programs = list(programs)
    workers = [p for p in programs if p.startswith("worker-")]
    out: set[str] = set()
    for path in changed:
        try:
            rel = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
        if rel.startswith("libs/agentsys/"):
            out.update(workers)
            out.update({"scheduler", "orchestrator", "gateway"})
        elif rel in AGENT_FILES:
            out.update(w for w in workers if serves(w, AGENT_FILES[rel]))
        elif rel.startswith("services/worker/worker/"):
            if path.name in SCHEDULER_ONLY:
                out.add("scheduler")
            else:
                out.update(workers)
                if path.name == "settings.py":
                    out.add("scheduler")
        elif rel.startswith("services/orchestrator/"):
            out.add("orchestrator")
        elif rel.startswith("services/gateway/"):
            out.add("gateway")
    return out & set(programs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reloader", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the checkout to watch")
    parser.add_argument("--sock", type=Path, help="supervisord's socket (default: $RUN_DIR/supervisor.sock)")
    args = parser.parse_args(argv)
    configure_logging("reloader", level=os.environ.get("LOG_LEVEL", "INFO"), fmt="json")
    sup = Supervisor(args.sock or Path(os.environ["RUN_DIR"]) / "supervisor.sock")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    paths = [args.root / p for p in WATCHED if (args.root / p).exists()]
    log.info("watching", paths=[str(p) for p in paths])
    for changes in watchfiles.watch(*paths, watch_filter=watchfiles.PythonFilter(), debounce=400,
                                    stop_event=stop, raise_interrupt=False):
        changed = sorted({Path(p) for _, p in changes})
        programs = [p["name"] for p in sup.programs() if p["statename"] in ("RUNNING", "STARTING", "BACKOFF")]
        restart = sorted(targets(changed, args.root, programs))
        log.info("source changed", files=[os.path.relpath(p, args.root) for p in changed], restarting=restart)
        if restart:
            try:
                sup.restart(restart)
                log.info("restarted", programs=restart)
            except (TimeoutError, OSError) as error:
                log.error("restart failed", programs=restart, error=str(error))
    return RET_OK


if __name__ == "__main__":
    raise SystemExit(main())
