"""Real Redis and PostgreSQL for the test session (DESIGN section 8).

REDIS_URL / DATABASE_URL when set; else testcontainers when a Docker engine answers;
else throwaway servers from the local binaries, on free ports in a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from agentsys import migrate
from postgres_service import cluster
from redis_service import server as redis_server

SELF_STARTED_REDIS_DBS = 512
"""Databases of a self-started Redis: one per test, never reused in a session."""


def docker_answers() -> bool:
    """True when a Docker engine answers its ping (on DOCKER_HOST or the default socket)."""
    if os.environ.get("AGENTSYS_TEST_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        import docker

        try:
            client = docker.DockerClient(base_url=host, timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
    path = host.removeprefix("unix://")
    if not os.path.exists(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in sock.recv(4096)
    except OSError:
        return False


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass
class Servers:
    redis_url: str
    redis_dbs: list[int]
    pg_url: str
    template: str
    mode: str
    _next_db: int = 0
    _stops: list = field(default_factory=list)

    def next_redis_db(self) -> int:
        db = self.redis_dbs[self._next_db % len(self.redis_dbs)]
        self._next_db += 1
        return db


@contextlib.contextmanager
def session_servers() -> Iterator[Servers]:
    stops: list = []
    tmp = Path(tempfile.mkdtemp(prefix="agentsys-test-"))
    tmp.chmod(0o755)  # the PostgreSQL server runs as an unprivileged user and must reach its folder
    mode = []
    try:
        if os.environ.get("REDIS_URL"):
            redis_url, dbs = os.environ["REDIS_URL"], list(range(1, 16))
            mode.append("redis:url")
        elif docker_answers():
            from testcontainers.community.redis import RedisContainer  # testcontainers.redis is deprecated (warns)

            container = RedisContainer(os.environ.get("AGENTSYS_TEST_REDIS_IMAGE", "redis:7"))
            container.start()
            stops.append(container.stop)
            redis_url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            dbs = list(range(1, 16))
            mode.append("redis:testcontainers")
        else:
            rs = redis_server.start(tmp / "redis", appendonly=False, databases=SELF_STARTED_REDIS_DBS)
            stops.append(rs.stop)
            redis_url, dbs = rs.url(0), list(range(1, SELF_STARTED_REDIS_DBS))
            mode.append("redis:local")

        if os.environ.get("DATABASE_URL"):
            pg_url = os.environ["DATABASE_URL"]
            mode.append("postgres:url")
        elif docker_answers():
            from testcontainers.community.postgres import PostgresContainer

            pg = PostgresContainer(os.environ.get("AGENTSYS_TEST_POSTGRES_IMAGE", "postgres:15"), driver=None)
            pg.start()
            stops.append(pg.stop)
            pg_url = pg.get_connection_url()
            mode.append("postgres:testcontainers")
        else:
            ps = cluster.start(tmp / "postgres", fast=True)
            stops.append(ps.stop)
            pg_url = ps.url("postgres")
            mode.append("postgres:local")

        template = f"agentsys_tpl_{os.getpid()}"
        cluster.drop_database(pg_url, template)
        cluster.create_database(pg_url, template)
        migrate.migrate(with_database(pg_url, template))
        stops.append(lambda: cluster.drop_database(pg_url, template))
        yield Servers(redis_url, dbs, pg_url, template, ",".join(mode))
    finally:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        shutil.rmtree(tmp, ignore_errors=True)
