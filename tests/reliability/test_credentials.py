"""A wrong Redis password or PostgreSQL credential stops ``agent-worker``, ``agentsys-migrate``,
``agent-orchestrator``, ``agent-gateway`` and ``agent-scheduler`` at start with one line naming the
problem: no traceback, and the secret itself is never printed. A server that is merely unreachable
does not stop the APIs (they start and report not ready).

The servers are this module's own: a redis-server with a password and a PostgreSQL cluster whose
``pwuser`` must give a password (scram-sha-256).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from redis import Redis

from agentsys.exitcodes import RET_AUTH, RET_CONFIG, RET_CONNECT
from postgres_service import cluster
from redis_service import server as redis_server
from tests.support import procs, wait

REDIS_PASSWORD = "redis-right-password-6f1c2a"
PG_PASSWORD = "pg-right-password-93b7d0"
WRONG = "wrong-password-c0ffee42"


@dataclass
class Guarded:
    redis: redis_server.RedisServer
    postgres: cluster.PostgresServer

    def redis_url(self, password: str | None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.redis.port}/0"

    def pg_url(self, user: str = "pwuser", password: str | None = PG_PASSWORD) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.postgres.port}/guarded"


@pytest.fixture(scope="module")
def guarded() -> Iterator[Guarded]:
    root = Path(tempfile.mkdtemp(prefix="agentsys-creds-"))
    root.chmod(0o755)
    hba = root / "pg_hba.conf"
    hba.write_text("local all all trust\n"
                   "host all pwuser 127.0.0.1/32 scram-sha-256\n"
                   "host all all 127.0.0.1/32 trust\n")
    hba.chmod(0o644)
    rs = redis_server.start(root / "redis", password=REDIS_PASSWORD, appendonly=False)
    try:
        ps = cluster.start(root / "postgres", fast=True, extra=("-c", f"hba_file={hba}"))
    except BaseException:
        rs.stop()
        raise
    try:
        with psycopg.connect(ps.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE pwuser LOGIN PASSWORD '{PG_PASSWORD}'")
            conn.execute("CREATE DATABASE guarded OWNER pwuser")
        yield Guarded(rs, ps)
    finally:
        ps.stop()
        rs.stop()
        shutil.rmtree(root, ignore_errors=True)


def _run(args: list[str], env: dict[str, str], log: Path, *, timeout: float = 60) -> tuple[int, list[str]]:
    proc = procs.start(args, {"LOG_FORMAT": "json", "ENVIRONMENT": "test", "KEY_PREFIX": "creds", **env}, log)
    try:
        code = proc.wait(timeout)
    finally:
        procs.stop(proc)
    return code, [line for line in log.read_text().splitlines() if line.strip()]


def _one_clean_line(lines: list[str], *secrets: str) -> str:
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for secret in secrets:
        assert secret not in lines[0], "a secret was printed"
    if lines[0].startswith("{"):  # a JSON log line: its event and error
        entry = json.loads(lines[0])
        return f"{entry['event']}: {entry.get('error', '')}"
    return lines[0]


WORKER = [str(procs.VENV_BIN / "agent-worker"), "--name", "creds"]
MIGRATE = [str(procs.VENV_BIN / "agentsys-migrate")]


def test_right_credentials_start_a_worker(guarded, tmp_path):
    """The control case: with the right secrets the same setup starts (so the refusals below are real)."""
    env = {"REDIS_URL": guarded.redis_url(REDIS_PASSWORD), "DATABASE_URL": guarded.pg_url()}
    code, lines = _run(MIGRATE, env, tmp_path / "migrate.log")
    assert code == 0, lines
    proc = procs.agent_worker({**env, "LOG_FORMAT": "json", "KEY_PREFIX": "creds"}, tmp_path / "w.log", name="ok")
    try:
        client = Redis.from_url(guarded.redis_url(REDIS_PASSWORD))
        try:
            # idle, not merely registered: RQ installs its SIGTERM handler after registering
            wait.until(lambda: proc.poll() is not None or client.hget("rq:worker:ok", "state") == b"idle",
                       timeout=30, what="the worker to register and wait for jobs")
        finally:
            client.close()
        assert proc.poll() is None, (tmp_path / "w.log").read_text()
    finally:
        assert procs.stop(proc) == 0


@pytest.mark.parametrize("case", ["wrong-password", "no-password"])
def test_worker_with_a_bad_redis_password_stops_with_one_line(guarded, tmp_path, case):
    password = WRONG if case == "wrong-password" else None
    env = {"REDIS_URL": guarded.redis_url(password), "DATABASE_URL": guarded.pg_url()}
    code, lines = _run(WORKER, env, tmp_path / "w.log")
    line = _one_clean_line(lines, WRONG, REDIS_PASSWORD, PG_PASSWORD)
    assert code == RET_CONNECT and "cannot reach Redis" in line, line
    assert "auth" in line.lower() or "password" in line.lower(), line


@pytest.mark.parametrize("case", ["wrong-password", "unknown-user"])
def test_worker_with_a_bad_postgres_credential_stops_with_one_line(guarded, tmp_path, case):
    url = guarded.pg_url(password=WRONG) if case == "wrong-password" else guarded.pg_url(user="nosuchuser",
                                                                                           password=None)
    env = {"REDIS_URL": guarded.redis_url(REDIS_PASSWORD), "DATABASE_URL": url}
    code, lines = _run(WORKER, env, tmp_path / "w.log")
    line = _one_clean_line(lines, WRONG, REDIS_PASSWORD, PG_PASSWORD)
    assert code == RET_CONNECT and "cannot reach PostgreSQL" in line, line
    expected = "password authentication failed" if case == "wrong-password" else 'role "nosuchuser" does not exist'
    assert expected in line, line


def test_migrate_with_a_wrong_postgres_password_stops_with_one_line(guarded, tmp_path):
    code, lines = _run(MIGRATE, {"DATABASE_URL": guarded.pg_url(password=WRONG)}, tmp_path / "m.log")
    line = _one_clean_line(lines, WRONG, PG_PASSWORD)
    assert code == RET_CONNECT and "cannot reach PostgreSQL" in line and "password authentication failed" in line, line


@pytest.mark.parametrize("variable,value", [("REDIS_URL", "not a url"), ("DATABASE_URL", "mysql://x@y/z")])
def test_a_malformed_url_stops_with_one_line_naming_it(guarded, tmp_path, variable, value):
    env = {"REDIS_URL": guarded.redis_url(REDIS_PASSWORD), "DATABASE_URL": guarded.pg_url(), variable: value}
    code, lines = _run(WORKER, env, tmp_path / "w.log")
    line = _one_clean_line(lines, REDIS_PASSWORD, PG_PASSWORD)
    assert code == RET_CONFIG and line.startswith(f"configuration error: {variable}"), line


# ---- the APIs and the scheduler ---------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry_point(service: str) -> list[str]:
    if service in ("agent-orchestrator", "agent-gateway"):  # a free port: a wrong start must not collide
        return [str(procs.VENV_BIN / service), "--port", str(_free_port())]
    return [str(procs.VENV_BIN / service), "--name", "creds", "--no-defaults"]


SERVICES = ["agent-orchestrator", "agent-gateway", "agent-scheduler"]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("case", ["wrong-password", "no-password"])
def test_a_bad_redis_password_stops_the_service_with_one_line(guarded, tmp_path, service, case):
    password = WRONG if case == "wrong-password" else None
    env = {"REDIS_URL": guarded.redis_url(password), "DATABASE_URL": guarded.pg_url()}
    code, lines = _run(_entry_point(service), env, tmp_path / "s.log", timeout=30)
    line = _one_clean_line(lines, WRONG, REDIS_PASSWORD, PG_PASSWORD)
    assert code == RET_AUTH != 0, lines
    assert line.startswith(f"{service}: REDIS_URL: Redis at redis://127.0.0.1:{guarded.redis.port}/0 refused"), line
    assert "auth" in line.lower() or "password" in line.lower(), line


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("case", ["wrong-password", "unknown-user"])
def test_a_bad_postgres_credential_stops_the_service_with_one_line(guarded, tmp_path, service, case):
    url = guarded.pg_url(password=WRONG) if case == "wrong-password" else guarded.pg_url(user="nosuchuser",
                                                                                           password=None)
    env = {"REDIS_URL": guarded.redis_url(REDIS_PASSWORD), "DATABASE_URL": url}
    code, lines = _run(_entry_point(service), env, tmp_path / "s.log", timeout=30)
    line = _one_clean_line(lines, WRONG, REDIS_PASSWORD, PG_PASSWORD)
    assert code == RET_AUTH != 0, lines
    assert line.startswith(f"{service}: DATABASE_URL: PostgreSQL at postgresql://"), line
    expected = "password authentication failed" if case == "wrong-password" else 'role "nosuchuser" does not exist'
    assert expected in line, line


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = procs.start([str(procs.VENV_BIN / "agent-orchestrator"), "--port", str(port)],
                       {"LOG_FORMAT": "json", "ENVIRONMENT": "test", "KEY_PREFIX": "creds", **env}, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait.until(lambda: proc.poll() is not None or _get(f"{url}/healthz"), timeout=30,
                   what="the orchestrator to answer /healthz")
    except BaseException:
        procs.stop(proc)
        raise
    return proc, url


def test_right_credentials_start_an_orchestrator(guarded, tmp_path):
    """The control case of the APIs: with the right secrets the orchestrator serves and reaches both."""
    env = {"REDIS_URL": guarded.redis_url(REDIS_PASSWORD), "DATABASE_URL": guarded.pg_url()}
    proc, url = _serve(env, tmp_path / "o.log")
    try:
        assert proc.poll() is None, (tmp_path / "o.log").read_text()
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        checks = httpx.get(f"{url}/readyz", timeout=10).json()["checks"]
        assert checks["redis"] == "ok" and checks["postgres"] == "ok", checks
    finally:
        procs.stop(proc)  # uvicorn re-raises the SIGTERM it handled: -15 is a clean stop
    assert REDIS_PASSWORD not in (tmp_path / "o.log").read_text()


def test_an_unreachable_redis_does_not_stop_the_orchestrator(guarded, tmp_path):
    """Production services survive a dependency that starts later: up, but not ready."""
    env = {"REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{_free_port()}/0", "DATABASE_URL": guarded.pg_url()}
    proc, url = _serve(env, tmp_path / "o.log")
    try:
        assert proc.poll() is None, (tmp_path / "o.log").read_text()
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("error"), ready.text
    finally:
        procs.stop(proc)  # uvicorn re-raises the SIGTERM it handled: -15 is a clean stop
    assert REDIS_PASSWORD not in (tmp_path / "o.log").read_text()
