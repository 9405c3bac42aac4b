"""Where the API is and the token to use: the environment first, then ``./.env``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from agentsys import defaults

URL_VARIABLES = ("AGENTCTL_URL", "ORCHESTRATOR_URL")
"""Variables naming the API's base URL, first found wins."""
TOKEN_VARIABLE = "API_TOKEN"  # noqa: S105 (the variable's name, not a secret)


@dataclass(frozen=True, slots=True)
class Config:
    url: str
    token: str | None

    def __repr__(self) -> str:  # never print the token
        return f"Config(url={self.url!r}, token={'set' if self.token else None})"


def load(*, url: str | None = None, env_file: Path | None = None) -> Config:
    """The configuration; ``url`` (a command-line flag) beats the environment and ``.env``."""
    file = {k: v for k, v in dotenv_values(env_file or Path.cwd() / ".env").items() if v is not None}

    def get(name: str) -> str | None:
        return os.environ.get(name) or file.get(name) or None

    found = url or next((v for v in map(get, URL_VARIABLES) if v), None) or defaults.ORCHESTRATOR_URL
    return Config(url=found.rstrip("/"), token=get(TOKEN_VARIABLE))
