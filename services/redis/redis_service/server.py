"""Start and stop a local redis-server from the machine's binary.

Used by the test session (throwaway servers on free ports) and by process mode
(``make run``), so both run Redis with the same settings as the containers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

INSTALL_HINT = "redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_path() -> Path:
    return Path(str(resources.files("redis_service").joinpath("redis.conf")))


@dataclass
class RedisServer:
    """A redis-server process we started (and so may stop)."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    password: str | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    directory: Path,
    *,
    port: int | None = None,
    password: str | None = None,
    appendonly: bool = True,
    databases: int = 16,
    logfile: Path | None = None,
    timeout: float = 20,
) -> RedisServer:
    """Start redis-server with our configuration, data in ``directory``; wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [binary, str(config_path()), "--port", str(port), "--dir", str(directory),
            "--databases", str(databases), "--appendonly", "yes" if appendonly else "no",
            "--daemonize", "no", "--logfile", str(logfile or directory / "redis.log")]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    server = RedisServer(port, directory, process, password)
    deadline = time.monotonic() + timeout
    client = Redis.from_url(server.url(), socket_connect_timeout=1)
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see {directory / 'redis.log'}")
        try:
            client.ping()
            client.close()
            return server
        except RedisConnectionError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"redis-server did not answer on port {port} within {timeout:g}s") from None
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """``agentsys-redis --dir D --port P``: run a local Redis in the foreground (process mode)."""
    parser = argparse.ArgumentParser(prog="agentsys-redis", description=main.__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="data folder")
    parser.add_argument("--port", type=int, default=6379)
    args = parser.parse_args(argv)
    binary = shutil.which("redis-server")
    if binary is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    cmd = [binary, str(config_path()), "--port", str(args.port), "--dir", str(args.dir), "--daemonize", "no"]
    password = os.environ.get("REDIS_PASSWORD")
    if password:
        cmd += ["--requirepass", password]
    os.execv(binary, cmd)  # noqa: S606 - exec the server in place of this launcher
