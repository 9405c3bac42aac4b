"""Process mode: the whole stack under supervisord, without Docker.

``python -m scripts.run.stack up`` (``make run``) renders ``$RUN_DIR/supervisord.conf``
from ``deploy/process/supervisord.conf.tmpl``, starts supervisord, then the programs in
order: Redis and PostgreSQL (unless REDIS_URL / DATABASE_URL name existing servers),
the migrations once, the demo universe, then the orchestrator, gateway, scheduler and
workers. It stays in the foreground; Ctrl-C (or SIGTERM) shuts everything down cleanly.
``status``, ``logs [PROGRAM]``, ``stop`` and ``restart PROGRAM...`` act on a running stack.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from pathlib import Path

import psycopg
from redis.exceptions import RedisError

from agentsys import defaults
from agentsys.exitcodes import RET_CONFIG, RET_FAILED, RET_NOT_RUNNING, RET_OK, RET_USAGE
from scripts.run import bootstrap
from scripts.run.config import ConfigError, RunConfig, check_ports, render, resolve
from scripts.run.supctl import Supervisor


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the launcher."""


def _interrupt(*_: object) -> None:
    raise Interrupted()


_BEGIN = time.monotonic()


def say(message: str) -> None:
    print(f"[run +{time.monotonic() - _BEGIN:.1f}s] {message}", flush=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (our own loopback URL)
            return bool(answer.status == 200)
    except OSError:
        return False


def _until(check, what: str, deadline: float) -> None:  # type: ignore[no-untyped-def]
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready in time")
        time.sleep(0.05)


def _prepare_folder(config: RunConfig) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.run_dir / "logs").mkdir(exist_ok=True)
    if config.own_postgres and os.geteuid() == 0:
        config.run_dir.chmod(0o755)  # the PostgreSQL server runs as an unprivileged user
    config.conf.write_text(render(config))


def _start(config: RunConfig, sup: Supervisor, proc: subprocess.Popen[bytes], begin: float) -> None:
    deadline = begin + defaults.PROCESS_START_TIMEOUT

    def supervisord_up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"supervisord exited with {proc.returncode}")
        return sup.alive()

    _until(supervisord_up, "supervisord", deadline)
    if config.servers:
        say(f"starting {' and '.join(config.servers)}")
        sup.start(config.servers)
    bootstrap.wait_redis(config.redis_url, timeout=max(1.0, deadline - time.monotonic()))
    bootstrap.wait_postgres(config.database_url, timeout=max(1.0, deadline - time.monotonic()))
    if config.own_postgres and bootstrap.create_database(config.database_url):
        say("created the database")
    sup.start(["migrate"])
    sup.wait_state(["migrate"], {"EXITED", "FATAL", "BACKOFF"}, timeout=max(1.0, deadline - time.monotonic()))
    if sup.info("migrate")["exitstatus"] != 0:
        raise RuntimeError(f"migrations failed: see {config.run_dir / 'logs' / 'migrate.log'}")
    seeded = bootstrap.seed_demo(config.redis_url, config.database_url, config.env.get("KEY_PREFIX", "agentsys"),
                                 config.demo_symbols,
                                 shard_size=int(config.env.get("SHARD_SIZE", defaults.SHARD_SIZE)))
    if seeded["added"]:
        say(f"seeded a demo universe of {seeded['added']} synthetic symbols")
    # Workers first, the rest once they have registered: on a small machine the programs'
    # imports compete for the CPU, and the first bang needs the workers, not the API.
    workers = [w.name for w in config.workers]
    say(f"starting {', '.join(workers)}")
    sup.start(workers)
    bootstrap.wait_workers(config.redis_url, workers, timeout=max(1.0, deadline - time.monotonic()))
    rest = [name for name in config.apps if name not in workers]
    say(f"starting {', '.join(rest)}")
    sup.start(rest)
    sup.wait_state(config.apps, {"RUNNING"}, timeout=max(1.0, deadline - time.monotonic()))
    _until(lambda: _http_ok(config.api_url + "/healthz"), "the orchestrator", deadline)
    _until(lambda: _http_ok(config.gateway_url + "/healthz"), "the gateway", deadline)


def banner(config: RunConfig, seconds: float) -> str:
    token_note = "new, saved in" if config.token_created else "from"
    servers = ", ".join(config.servers) or "none (using REDIS_URL / DATABASE_URL)"
    lines = [
        f"agent-system is up in {seconds:.1f}s (process mode, run folder {config.run_dir})",
        f"  API        {config.api_url}        (OpenAPI: {config.api_url}/docs)",
        f"  dashboard  {config.gateway_url}",
        f"  API token  {config.token}   ({token_note} {config.env_file})",
        f"  servers    {servers}",
        f"  programs   {', '.join(config.apps)}",
        "  make status | make logs [SERVICE] | make restart SERVICE | make stop   (or Ctrl-C here)",
    ]
    if config.reload:
        lines.append("  hot reload on: an edited agent restarts only the workers serving it")
    return "\n".join(lines)


def up() -> int:
    begin = time.monotonic()
    try:
        config = resolve()
        sup = Supervisor(config.sock)
        if sup.alive():
            print(f"make run: already running in {config.run_dir} (make status, make stop)", file=sys.stderr)
            return RET_FAILED
        check_ports(config)
    except ConfigError as error:
        print(f"make run: {error}", file=sys.stderr)
        return RET_CONFIG
    _prepare_folder(config)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    # supervisord gets its own session: a Ctrl-C here reaches only this launcher, which then
    # shuts supervisord down in order (apps first, servers last) and waits for it.
    proc = subprocess.Popen([str(Path(sys.executable).with_name("supervisord")), "-c", str(config.conf)],
                            env=config.env, stdin=subprocess.DEVNULL, start_new_session=True)
    code = RET_OK
    try:
        _start(config, sup, proc, begin)
        shared = ("REDIS_URL", "DATABASE_URL", "KEY_PREFIX", "WORKER_WITH_SCHEDULER", "LOG_FORMAT", "PYTHONPATH")
        config.state_file.touch(mode=0o600)
        config.state_file.write_text(json.dumps({  # for status, and for agentctl.processes' extra workers
            "api": config.api_url, "dashboard": config.gateway_url, "programs": config.apps,
            "servers": config.servers, "env": {k: config.env[k] for k in shared if k in config.env}}))
        say(banner(config, time.monotonic() - begin))
        code = proc.wait()
        say(f"supervisord exited with {code}")
    except Interrupted:
        say("stopping everything ...")
    except (TimeoutError, RuntimeError, OSError, psycopg.Error, RedisError, xmlrpc.client.Fault) as error:
        print(f"make run: {error}; logs in {config.run_dir / 'logs'}", file=sys.stderr)
        code = RET_FAILED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if proc.poll() is None:
            if not sup.shutdown():
                proc.terminate()  # SIGTERM: supervisord's own orderly shutdown
            try:
                proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        say("stopped")
    return code


def _running(config: RunConfig) -> Supervisor | None:
    sup = Supervisor(config.sock)
    if not sup.alive():
        print(f"not running (run folder {config.run_dir})", file=sys.stderr)
        return None
    return sup


def status() -> int:
    config = resolve(create_token=False)
    sup = _running(config)
    if sup is None:
        return RET_NOT_RUNNING
    for p in sup.programs():
        print(f"{p['name']:<24} {p['statename']:<10} {p['description']}")
    try:
        urls = json.loads(config.state_file.read_text())
    except (OSError, ValueError):
        urls = {"api": config.api_url, "dashboard": config.gateway_url}
    print(f"API {urls['api']}   dashboard {urls['dashboard']}   logs {config.run_dir / 'logs'}")
    return RET_OK


def logs(names: list[str]) -> int:
    config = resolve(create_token=False)
    folder = config.run_dir / "logs"
    files = [str(folder / f"{n}.log") for n in names] if names else sorted(str(p) for p in folder.glob("*.log"))
    if not files:
        print(f"no logs in {folder}", file=sys.stderr)
        return RET_NOT_RUNNING
    os.execvp("tail", ["tail", "-n", "50", "-F", *files])  # noqa: S606 (replaces this process: no shell)
    return RET_OK


def stop() -> int:
    config = resolve(create_token=False)
    sup = _running(config)
    if sup is None:
        return RET_OK
    pid = sup.pid()
    sup.shutdown()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("stopped")
            return RET_OK
        time.sleep(0.1)
    print(f"supervisord (pid {pid}) is still stopping its programs", file=sys.stderr)
    return RET_FAILED


def restart(names: list[str]) -> int:
    config = resolve(create_token=False)
    sup = _running(config)
    if sup is None:
        return RET_NOT_RUNNING
    known = [p["name"] for p in sup.programs()]
    wanted: list[str] = []
    for name in names or []:
        if name == "workers":
            wanted += [n for n in known if n.startswith("worker-")]
        elif name in known:
            wanted.append(name)
        else:
            print(f"no program {name!r}; programs: {', '.join(known)} (or 'workers')", file=sys.stderr)
            return RET_USAGE
    if not wanted:
        print("say which: make restart SERVICE (a program name, or 'workers')", file=sys.stderr)
        return RET_USAGE
    sup.restart(wanted)
    sup.wait_state(wanted, {"RUNNING"}, timeout=60)
    print(f"restarted {', '.join(wanted)}")
    return RET_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.run.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "status", "logs", "stop", "restart"])
    parser.add_argument("names", nargs="*", help="programs (logs, restart)")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up()
    if args.command == "status":
        return status()
    if args.command == "logs":
        return logs(args.names)
    if args.command == "stop":
        return stop()
    return restart(args.names)


if __name__ == "__main__":
    raise SystemExit(main())
