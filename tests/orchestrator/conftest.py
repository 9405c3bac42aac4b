"""An app per test over the test's own Redis db, key prefix and database."""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from agentsys import tasks
from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings

TOKEN = "orchestrator-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PIPELINE_TYPES = ("pipeline", "replay", "backfill", "recover", "run_agent")


def needs_pipeline() -> None:
    """Skip unless the agent pipeline (agentsys.replay and its task types) is installed."""
    try:
        import agentsys.replay  # noqa: F401
    except ImportError:
        pytest.skip("the agent pipeline is not built yet: agentsys.replay is not importable")
    missing = [t for t in PIPELINE_TYPES if t not in tasks.TASK_TYPES]
    if missing:
        pytest.skip(f"the agent pipeline is not built yet: task types {missing} are not registered")


@pytest.fixture
def settings(stack) -> OrchestratorSettings:
    return OrchestratorSettings(api_token=TOKEN, _env_file=None)


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    """A client that sends the token (for writes)."""
    with TestClient(create_app(settings), headers=AUTH) as c:
        yield c


@pytest.fixture
def anon(client) -> TestClient:
    """The same app, without a token."""
    with TestClient(client.app) as c:
        yield c


def zigzag_csv(symbols=("AAA",), n: int = 40, start: str = "2026-01-05T09:00:00Z") -> str:
    """Prices that swing up and down, so short EMAs cross and bangs happen."""
    from datetime import datetime, timedelta

    t0 = datetime.fromisoformat(start)
    lines = ["symbol,ts,price"]
    for s_i, symbol in enumerate(symbols):
        for i in range(n):
            price = 100 + 10 * math.sin(i / 3 + s_i) + i * 0.1
            lines.append(f"{symbol},{(t0 + timedelta(minutes=i)).isoformat()},{price:.4f}")
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def serving(stack, log, *, token: str) -> Iterator[str]:
    """A real ``agent-orchestrator`` process on a free loopback port; yields its URL."""
    from tests.support import procs
    from tests.support.wait import until

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = procs.start([str(procs.VENV_BIN / "agent-orchestrator"), "--port", str(port)],
                       {**stack.env, "API_TOKEN": token}, log)
    try:
        until(lambda: proc.poll() is not None or _healthy(url), timeout=30, what="the orchestrator to listen")
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        procs.stop(proc)
