"""Process mode's configuration: what to run, on which ports, with which environment.

Read once by the launcher from the environment and an env file (``ENV_FILE``, default
``.env``; the environment wins), then handed to supervisord as its environment, which
every program inherits. Nothing here talks to a server.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from dotenv import dotenv_values

from agentsys import agents, defaults, keys

ROOT = Path(__file__).resolve().parents[2]
"""The checkout this launcher belongs to (its code is what runs)."""
TEMPLATE = ROOT / "deploy" / "process" / "supervisord.conf.tmpl"
ALL_QUEUES = ",".join(keys.WORKER_QUEUES)
SOURCE_ROOTS = ("libs/agentsys", "services/worker", "services/orchestrator", "services/gateway",
                "services/redis", "services/postgres", "clients/agentctl", ".")
"""Put first on every program's PYTHONPATH, so the checkout's code runs (and reloads)."""
DEFAULTS = {"REDIS_PORT": 6379, "POSTGRES_PORT": 5432, "API_PORT": defaults.API_PORT, "GATEWAY_PORT": defaults.GATEWAY_PORT}


class ConfigError(Exception):
    """A process-mode setting is wrong; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str
    queues: str

    def serves(self, queue: str) -> bool:
        return queue in self.queues.split(",")


@dataclass
class RunConfig:
    root: Path
    run_dir: Path
    env_file: Path
    ports: dict[str, int]
    redis_url: str
    database_url: str
    own_redis: bool
    own_postgres: bool
    workers: list[WorkerSpec]
    reload: bool
    demo_symbols: int
    token: str
    token_created: bool
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        """Where ``up`` notes this run's URLs for ``status``."""
        return self.run_dir / "run.json"

    @property
    def sock(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def conf(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['API_PORT']}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"

    @property
    def servers(self) -> list[str]:
        return [name for name, own in (("redis", self.own_redis), ("postgres", self.own_postgres)) if own]

    @property
    def apps(self) -> list[str]:
        """Programs started after the migrations, in start order."""
        return [*(w.name for w in self.workers), "scheduler", "orchestrator", "gateway",
                *(["reloader"] if self.reload else [])]


def _int(env: dict[str, str], name: str, default: int | None, low: int = 0) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d+", raw.strip()) or int(raw) < low:
        raise ConfigError(f"{name}={raw!r}: expected a whole number >= {low}")
    return int(raw)


def worker_layout(env: dict[str, str]) -> list[WorkerSpec]:
    """Worker programs: ``WORKERS=N`` all-agent workers (default 2), or per-agent counts.

    With any of WORKERS_PRICE / WORKERS_INDICATOR / WORKERS_BANG set, each agent gets its
    own workers (1 for an agent left unset) serving only its queue, plus WORKERS_CONTROL
    (default 1) workers for the control queue (notes, ticks, sweeps, clean-up), so an
    agent's backlog never delays them; WORKERS then adds all-agent workers (default 0).
    """
    per_agent = {a: _int(env, f"WORKERS_{a.name.upper()}", None) for a in agents.AGENTS}
    if all(v is None for v in per_agent.values()):
        count = _int(env, "WORKERS", 2, low=1)
        return [WorkerSpec(f"worker-{i}", ALL_QUEUES) for i in range(1, (count or 0) + 1)]
    layout = [WorkerSpec(f"worker-{i}", ALL_QUEUES) for i in range(1, (_int(env, "WORKERS", 0) or 0) + 1)]
    for agent, count in per_agent.items():
        layout += [WorkerSpec(f"worker-{agent.name}-{i}", agent.queue)
                   for i in range(1, (1 if count is None else count) + 1)]
    layout += [WorkerSpec(f"worker-control-{i}", keys.CONTROL_QUEUE)
               for i in range(1, (_int(env, "WORKERS_CONTROL", 1) or 0) + 1)]
    if not any(w.serves(keys.CONTROL_QUEUE) for w in layout):
        raise ConfigError("no worker serves the control queue: set WORKERS_CONTROL=1 (or WORKERS=1)")
    return layout


def _path(value: str | None, default: Path) -> Path:
    if not value:
        return default
    path = Path(value).expanduser()
    return (path if path.is_absolute() else ROOT / path).resolve()


def ensure_token(env_file: Path, known: str | None) -> tuple[str, bool]:
    """API_TOKEN from the environment or the env file; else a new one, appended to the file."""
    if known:
        return known, False
    token = secrets.token_urlsafe(32)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    existing = env_file.read_text() if env_file.exists() else ""
    with open(env_file, "a") as out:
        if existing and not existing.endswith("\n"):
            out.write("\n")
        out.write(f"# generated by make run on first start\nAPI_TOKEN={token}\n")
    env_file.chmod(0o600)
    return token, True


def resolve(environ: dict[str, str] | None = None, *, create_token: bool = True) -> RunConfig:
    """Everything a run needs, from the environment and the env file (``create_token``: write
    a new API_TOKEN into the env file when there is none)."""
    outer = dict(os.environ if environ is None else environ)
    env_file = _path(outer.get("ENV_FILE"), ROOT / ".env")
    from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.exists() else {}
    env = {**from_file, **outer}
    run_dir = _path(env.get("RUN_DIR"), ROOT / defaults.RUN_DIR)
    ports = {name: _int(env, name, default, low=1) or default for name, default in DEFAULTS.items()}
    own_redis, own_postgres = not env.get("REDIS_URL"), not env.get("DATABASE_URL")
    redis_url = env.get("REDIS_URL") or f"redis://127.0.0.1:{ports['REDIS_PORT']}/0"
    database_url = env.get("DATABASE_URL") or f"postgresql://postgres@127.0.0.1:{ports['POSTGRES_PORT']}/agentsys"
    token, created = ensure_token(env_file, env.get("API_TOKEN")) if create_token else (env.get("API_TOKEN", ""), False)
    python_path = os.pathsep.join([*(str(ROOT / p) for p in SOURCE_ROOTS), *filter(None, [env.get("PYTHONPATH")])])
    children = {
        **from_file,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "API_TOKEN": token,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(ports["API_PORT"]),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(ports["GATEWAY_PORT"]),
        "ORCHESTRATOR_URL": f"http://127.0.0.1:{ports['API_PORT']}",
        "WORKER_WITH_SCHEDULER": env.get("WORKER_WITH_SCHEDULER", "false"),  # agent-scheduler moves due retries
        "LOG_FORMAT": env.get("LOG_FORMAT", "json"),
        "ENVIRONMENT": env.get("ENVIRONMENT", "development"),
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",
        "RUN_DIR": str(run_dir),
    }
    return RunConfig(
        root=ROOT, run_dir=run_dir, env_file=env_file, ports=ports, redis_url=redis_url,
        database_url=database_url, own_redis=own_redis, own_postgres=own_postgres,
        workers=worker_layout(env), reload=env.get("RELOAD", "") not in ("", "0", "false", "no"),
        demo_symbols=_int(env, "DEMO_SYMBOLS", defaults.DEMO_SYMBOLS) or 0, token=token, token_created=created,
        env={**outer, **children},
    )


def check_ports(config: RunConfig) -> None:
    """Refuse to start on a port something else listens on, naming the variable to change."""
    wanted = {"API_PORT": "API_PORT", "GATEWAY_PORT": "GATEWAY_PORT"}
    if config.own_redis:
        wanted["REDIS_PORT"] = "REDIS_PORT (or REDIS_URL for an existing server)"
    if config.own_postgres:
        wanted["POSTGRES_PORT"] = "POSTGRES_PORT (or DATABASE_URL for an existing server)"
    for name, hint in wanted.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", config.ports[name]))
            except OSError:
                raise ConfigError(f"port {config.ports[name]} is in use: set {hint}") from None


def blocks() -> dict[str, str]:
    """The template's blocks (``;; block: NAME``), by name."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith(";; block: "):
            current = found.setdefault(line.removeprefix(";; block: ").strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() + "\n" for name, lines in found.items()}


def render(config: RunConfig) -> str:
    """supervisord.conf for this run."""
    parts = blocks()
    values = {
        "run_dir": str(config.run_dir), "root": str(config.root), "bin": str(Path(sys.executable).parent),
        "python": sys.executable, "run_id": re.sub(r"[^A-Za-z0-9]", "", config.run_dir.name)[:16] or "run",
        "redis_port": config.ports["REDIS_PORT"], "postgres_port": config.ports["POSTGRES_PORT"],
        "api_port": config.ports["API_PORT"], "gateway_port": config.ports["GATEWAY_PORT"],
        "worker_stop_timeout": defaults.PROCESS_WORKER_STOP_TIMEOUT,
        # as root, say so (supervisord would warn); PostgreSQL drops to an unprivileged user itself
        "user_line": "user=root" if os.geteuid() == 0 else "",
    }
    chosen = ["base", *config.servers, "migrate", "orchestrator", "gateway", "scheduler"]
    out = [Template(parts[name]).substitute(values) for name in chosen]
    out += [Template(parts["worker"]).substitute(values, name=w.name, queues=w.queues) for w in config.workers]
    if config.reload:
        out.append(Template(parts["reloader"]).substitute(values))
    return "\n".join(out)
