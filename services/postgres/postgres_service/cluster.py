"""Create, start and stop a local PostgreSQL cluster from the machine's server binaries.

PostgreSQL refuses to run as root, and Debian keeps its server binaries off PATH
(``/usr/lib/postgresql/<version>/bin``). Run as root, this drops to an unprivileged
user (``PGUSER_OS``, default ``nobody``) for initdb and the server.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

INSTALL_HINT = "PostgreSQL server binaries not found: install them (Debian/Ubuntu: apt-get install postgresql)"
FAST_OPTIONS = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
"""Throwaway clusters (tests) trade durability for speed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bindir() -> Path:
    """Folder holding initdb and postgres: PG_BINDIR, else Debian's newest, else PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(INSTALL_HINT)


def _run_as() -> dict[str, object]:
    """Popen arguments that drop root to an unprivileged user."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(os.environ.get("PGUSER_OS", "nobody"))
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _chown(path: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(os.environ.get("PGUSER_OS", "nobody"))
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
    os.chown(path, user.pw_uid, user.pw_gid)


@dataclass
class PostgresServer:
    """A postgres process we started (and so may stop)."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def init(directory: Path, *, user: str = "postgres") -> Path:
    """initdb into ``directory/data`` unless a cluster is already there."""
    data = directory / "data"
    if (data / "PG_VERSION").exists():
        return data
    directory.mkdir(parents=True, exist_ok=True)
    _chown(directory)
    result = subprocess.run(
        [str(bindir() / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8", "--no-locale", "-N"],
        cwd=directory, capture_output=True, text=True, **_run_as(),  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        hint = " (as root, the folder and its parents must be reachable by PGUSER_OS)" if _run_as() else ""
        raise RuntimeError(f"initdb failed: {' '.join(result.stderr.strip().splitlines()[-1:])}{hint}")
    return data


def start(
    directory: Path,
    *,
    port: int | None = None,
    fast: bool = False,
    user: str = "postgres",
    timeout: float = 30,
    extra: tuple[str, ...] = (),
) -> PostgresServer:
    """Start a cluster (initialising it when new) and wait until it accepts connections."""
    data = init(directory, user=user)
    port = port or free_port()
    sockets = directory / "sock"
    sockets.mkdir(exist_ok=True)
    _chown(sockets)
    log = open(directory / "postgres.log", "ab")
    args = [str(bindir() / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", *(FAST_OPTIONS if fast else ()), *extra]
    process = subprocess.Popen(args, cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               start_new_session=True, **_run_as())  # type: ignore[call-overload]
    log.close()
    server = PostgresServer(port, directory, process, user)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}; see {directory / 'postgres.log'}")
        try:
            psycopg.connect(server.url(), connect_timeout=1).close()
            return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"postgres did not accept connections on port {port} within {timeout:g}s") from None
            time.sleep(0.05)


def create_database(url: str, name: str, *, template: str | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            tpl = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{tpl}')  # type: ignore[arg-type]


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """``agentsys-postgres --dir D --port P``: run a local cluster in the foreground (process mode)."""
    parser = argparse.ArgumentParser(prog="agentsys-postgres", description=main.__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="cluster folder (created on first run)")
    parser.add_argument("--port", type=int, default=5432)
    args = parser.parse_args(argv)
    try:
        data = init(args.dir)
        binary = bindir() / "postgres"
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    cmd = [str(binary), "-D", str(data), "-p", str(args.port), "-k", str(args.dir),
           "-c", "listen_addresses=127.0.0.1"]
    runas = _run_as()
    if runas:
        os.setgroups([])
        os.setgid(int(runas["group"]))  # type: ignore[call-overload]
        os.setuid(int(runas["user"]))  # type: ignore[call-overload]
    os.execv(str(binary), cmd)  # noqa: S606 - exec the server in place of this launcher
