"""``make run`` as a user runs it: free ports, its own run folder and env file, always stopped."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from redis import Redis

from agentsys.keys import Keys
from scripts.run.supctl import Supervisor
from tests.support import wait

ROOT = Path(__file__).resolve().parents[2]
BANNER = "agent-system is up in"
HOST_ENV = ("REDIS_URL", "DATABASE_URL", "KEY_PREFIX", "API_TOKEN", "RUN_DIR", "ENV_FILE", "RELOAD", "WORKERS",
            "WORKERS_PRICE", "WORKERS_INDICATOR", "WORKERS_BANG", "WORKERS_CONTROL", "ENVIRONMENT")
"""Variables of the test process that must not leak into the stack unless a test sets them."""


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


@dataclass
class Running:
    """A stack started by ``make``; the adapter fields let tests.support.pipeline drive it."""

    root: Path
    folder: Path
    run_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    redis_url: str
    database_url: str
    prefix: str

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    @property
    def token(self) -> str:
        for line in (self.folder / ".env").read_text().splitlines():
            if line.startswith("API_TOKEN="):
                return line.split("=", 1)[1]
        raise AssertionError("no API_TOKEN in the generated .env")

    @property
    def sup(self) -> Supervisor:
        return Supervisor(self.run_dir / "supervisor.sock")

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    @functools.cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url)

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url)

    def make(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "-s", "-C", str(self.root), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def pid(self, program: str) -> int:
        return int(self.sup.info(program)["pid"])

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _stop(running: Running) -> None:
    """make stop, then make sure nothing we started is left (by PID, never by name)."""
    supervisord_pid = None
    with contextlib.suppress(OSError, ValueError):
        supervisord_pid = int((running.run_dir / "supervisord.pid").read_text().strip())
    with contextlib.suppress(subprocess.TimeoutExpired):
        running.make("stop", timeout=200)
    try:
        running.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        running.proc.send_signal(signal.SIGTERM)
        try:
            running.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()
    if supervisord_pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisord_pid, signal.SIGKILL)  # only when everything above failed


@contextlib.contextmanager
def make_run(target: str = "run", *, root: Path = ROOT, start_timeout: float = 120, **settings: str
             ) -> Iterator[Running]:
    """Run ``make <target>`` in the background with its own folder and ports; stop it afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="agentsys-make-run-"))
    folder.chmod(0o755)  # PostgreSQL runs as an unprivileged user and must reach its data folder
    redis_port, pg_port, api_port, gw_port = free_ports(4)
    env = {k: v for k, v in os.environ.items() if k not in HOST_ENV}
    env.update({"RUN_DIR": str(folder / "run"), "ENV_FILE": str(folder / ".env"), "REDIS_PORT": str(redis_port),
                "POSTGRES_PORT": str(pg_port), "API_PORT": str(api_port), "GATEWAY_PORT": str(gw_port)})
    env.update(settings)
    log = folder / "make.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "-s", "-C", str(root), target], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    running = Running(
        root=root, folder=folder, run_dir=folder / "run", env=env, proc=proc, log=log,
        redis_url=env.get("REDIS_URL") or f"redis://127.0.0.1:{redis_port}/0",
        database_url=env.get("DATABASE_URL") or f"postgresql://postgres@127.0.0.1:{pg_port}/agentsys",
        prefix=env.get("KEY_PREFIX", "agentsys"),
    )
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"make {target} exited with {proc.returncode}:\n{running.output()[-4000:]}")
            return BANNER in running.output()

        wait.until(up, timeout=start_timeout, interval=0.1, what=f"make {target} to print its banner")
        yield running
    finally:
        _stop(running)
        if "redis" in running.__dict__:
            running.redis.close()
        shutil.rmtree(folder, ignore_errors=True)
