"""Process-mode figures: time from ``make run`` to the first bang (cold and warm), RSS of every
program at idle, a worker's start-up time (burst start on an empty queue), and the compose
test's CSV replay end to end (to compare process mode with containers).

``make measure`` (or ``python -m scripts.run.measure``). It runs its own stack in a temporary
run folder on free ports (its own Redis and PostgreSQL), so it touches nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg

from scripts.run.config import ROOT
from scripts.run.supctl import Supervisor

BANNER = "agent-system is up in"
IDLE_SETTLE_S = 15.0
"""Seconds the stack runs before RSS is read (caches warm, first jobs done)."""


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


@contextlib.contextmanager
def _stack(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scripts.run.stack", "up"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)  # the launcher's Ctrl-C path: an orderly shutdown
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _first_bang_after(url: str, since_wall: float, launched: float, prices_after: float | None,
                      timeout: float = 180) -> tuple[float, float]:
    """Seconds from launch to the first new price (a bar after ``prices_after``) and to the first
    bang stored after ``since_wall``."""
    first_price = first_bang = None
    deadline = launched + timeout
    while time.monotonic() < deadline and first_bang is None:
        try:
            with psycopg.connect(url, connect_timeout=1) as conn:
                row = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM prices WHERE ts > to_timestamp(%s)),"
                    " EXISTS (SELECT 1 FROM bang_events WHERE created_at > to_timestamp(%s))",
                    (prices_after or 0, since_wall)).fetchone()
            if row and row[0] and first_price is None:
                first_price = time.monotonic() - launched
            if row and row[1]:
                first_bang = time.monotonic() - launched
        except psycopg.Error:
            pass
        time.sleep(0.05)
    if first_bang is None:
        raise TimeoutError("no bang within the deadline")
    return first_price or first_bang, first_bang


def _rss(sup: Supervisor) -> dict[str, tuple[int, int]]:
    """RSS and USS (bytes) of each program's process tree (a worker's job processes included)."""
    out = {}
    for info in sup.programs():
        if not info["pid"]:
            continue
        procs = [psutil.Process(info["pid"])]
        procs += procs[0].children(recursive=True)
        rss = uss = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                full = p.memory_full_info()
                rss, uss = rss + full.rss, uss + full.uss
        out[info["name"]] = (rss, uss)
    return out


def _burst_start(env: dict[str, str], args: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        begin = time.monotonic()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        times.append(time.monotonic() - begin)
    return statistics.median(times)


def _replay(api: str, env_file: Path, runs: int = 3) -> list[float]:
    """The compose test's replay check against this stack: end-to-end seconds of each run."""
    token = next(line.split("=", 1)[1].strip() for line in env_file.read_text().splitlines()
                 if line.startswith("API_TOKEN="))
    deadline = time.monotonic() + 60
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", f"{api}/readyz"], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the orchestrator at {api} is not ready")
        time.sleep(0.2)
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, str(ROOT / "scripts/compose/replay_check.py"), "--api", api],
                              env={**os.environ, "API_TOKEN": token}, capture_output=True, text=True, timeout=300)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result.get("replay") != "pass":
            raise RuntimeError(f"replay check failed: {result.get('replay')}")
        times.append(float(result["replay_seconds"]))
    return times


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="agentsys-measure-"))
    folder.chmod(0o755)
    redis_port, pg_port, api_port, gw_port = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "KEY_PREFIX", "RELOAD")}
    env.update({"RUN_DIR": str(folder / "run"), "ENV_FILE": str(folder / ".env"), "REDIS_PORT": str(redis_port),
                "POSTGRES_PORT": str(pg_port), "API_PORT": str(api_port), "GATEWAY_PORT": str(gw_port)})
    url = f"postgresql://postgres@127.0.0.1:{pg_port}/agentsys"
    sup = Supervisor(folder / "run" / "supervisor.sock")
    figures: dict[str, object] = {}
    newest: float | None = None
    try:
        for phase in ("cold", "warm"):
            since, launched = time.time(), time.monotonic()
            with _stack(env, folder / f"{phase}.log") as proc:
                price_s, bang_s = _first_bang_after(url, since, launched, newest)
                figures[f"{phase}_first_price_s"], figures[f"{phase}_first_bang_s"] = round(price_s, 2), round(bang_s, 2)
                print(f"{phase:>5}: first price {price_s:5.1f}s, first bang {bang_s:5.1f}s after make run", flush=True)
                if phase == "cold":
                    time.sleep(IDLE_SETTLE_S)  # a measured idle period, not a wait on a condition
                    rss = _rss(sup)
                    figures["rss_mb"] = {n: round(r / 2**20, 1) for n, (r, _) in rss.items()}
                    figures["uss_mb"] = {n: round(u / 2**20, 1) for n, (_, u) in rss.items()}
                    print("idle memory per program (process tree): RSS / USS (unshared)")
                    for name, (r, u) in sorted(rss.items()):
                        print(f"  {name:<14} {r / 2**20:7.1f} MB  {u / 2**20:7.1f} MB")
                    print(f"  {'total':<14} {sum(r for r, _ in rss.values()) / 2**20:7.1f} MB"
                          f"  {sum(u for _, u in rss.values()) / 2**20:7.1f} MB")
                    bindir = Path(sys.executable).parent
                    run_env = {**env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "DATABASE_URL": url,
                               "WORKER_WITH_SCHEDULER": "false", "LOG_FORMAT": "json",
                               "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("libs/agentsys",
                                                                                      "services/worker"))}
                    ours = _burst_start(run_env, [str(bindir / "agent-worker"), "--burst", "--queues", "control.low"])
                    rqs = _burst_start(run_env, [str(bindir / "rq"), "worker", "--burst", "-w",
                                                 "worker.app.AgentWorker", "-S", "json", "--url",
                                                 run_env["REDIS_URL"], "control.low"])
                    figures["worker_burst_start_s"] = round(ours, 2)
                    figures["rq_cli_burst_start_s"] = round(rqs, 2)
                    print(f"worker start-up (burst, empty queue, median of 3): agent-worker {ours:.2f}s,"
                          f" rq worker -w worker.app.AgentWorker {rqs:.2f}s")
                if phase == "warm":
                    figures["replay_s"] = _replay(f"http://127.0.0.1:{api_port}", folder / ".env")
                    print(f"replay of 100 symbols x 500 bars through POST /tasks/replay (the compose test's):"
                          f" {figures['replay_s']} s")
                with psycopg.connect(url) as conn:
                    row = conn.execute("SELECT extract(epoch FROM max(ts)) FROM prices").fetchone()
                    newest = float(row[0]) if row and row[0] is not None else None
            if proc.returncode not in (0, None):
                print(f"the {phase} run ended with {proc.returncode}; see {folder / (phase + '.log')}")
        print(json.dumps(figures))
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
