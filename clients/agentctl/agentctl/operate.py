"""``agentctl worker start|stop`` and ``agentctl status``: the seeds' control script.

Thin wrappers over :mod:`agentctl.processes` and :mod:`agentsys.status`; like the pipeline commands they talk to Redis and
PostgreSQL directly (no API needed), and share its one-line error contract.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import psycopg
from redis import Redis
from redis.exceptions import RedisError

from agentctl import output, processes
from agentctl.pipeline import CommandError
from agentsys import db, defaults
from agentsys.exitcodes import RET_CONNECT, RET_OK, RET_USAGE
from agentsys.keys import Keys
from agentsys.settings import CommonSettings, load
from agentsys.status import overview


def _settings(args: argparse.Namespace) -> CommonSettings:
    """Settings from the environment, else from what ``make run`` noted in the run folder."""
    noted = processes.run_environment(args.run_dir)
    for name, value in noted.items():
        os.environ.setdefault(name, value)
    return load(CommonSettings)


def run_worker(args: argparse.Namespace) -> int:
    try:
        if args.action == "start":
            started = processes.start_worker(name=args.name, queues=args.queues, folder=args.run_dir)
            data: dict[str, Any] = {"name": started.name, "pid": started.pid, "queues": started.queues,
                                    "pidfile": str(started.pidfile), "log": str(started.log)}
            text = f"started worker {started.name} (pid {started.pid}, queues {started.queues or 'all'}); log {started.log}"
        else:
            stopped = processes.stop_worker(name=args.name, folder=args.run_dir, timeout=args.timeout)
            data = {"name": stopped.name, "pid": stopped.pid, "how": stopped.how, "seconds": stopped.seconds}
            text = f"worker {stopped.name}: {stopped.how}" + (f" in {stopped.seconds:g}s" if stopped.pid else "")
    except processes.OpsError as error:
        raise CommandError(str(error), RET_USAGE) from None
    print(json.dumps(data) if args.json else text)
    return RET_OK


def run_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    redis = Redis.from_url(settings.redis, socket_connect_timeout=defaults.CONNECT_TIMEOUT)
    conn: psycopg.Connection | None = None
    try:
        try:
            redis.ping()
        except RedisError as error:
            raise CommandError(f"cannot reach Redis: {str(error).strip() or type(error).__name__}",
                               RET_CONNECT) from None
        try:
            conn = db.connect(settings.database)
        except psycopg.Error:
            conn = None  # the screen still shows queues, workers and flags; bangs are left out
        data = overview(redis, conn, Keys(settings.key_prefix), bangs=args.bangs)
    finally:
        if conn is not None:
            conn.close()
        redis.close()
    print(json.dumps(data, default=str, indent=2) if args.json else output.status(data))
    return RET_OK


def add_commands(sub: Any) -> None:
    """Register ``worker`` and ``status`` on an argparse subparsers object."""
    worker = sub.add_parser("worker", help="start or stop one more worker outside the process manager")
    actions = worker.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a detached agent-worker (pidfile and log in the run folder)")
    start.add_argument("--name", required=True, help="the worker's name (letters, digits, '_', '.', '-')")
    start.add_argument("--queues", help="comma-separated queues (default: every agent and control)")
    stop = actions.add_parser("stop", help="SIGTERM the worker (its job finishes), SIGKILL after --timeout")
    stop.add_argument("--name", required=True)
    stop.add_argument("--timeout", type=float, default=defaults.STOP_TIMEOUT,
                      help="seconds to wait before the force-kill (default %(default)s)")
    for p in (start, stop):
        p.add_argument("--run-dir", help="run folder (default: RUN_DIR or .run)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=run_worker)
    status = sub.add_parser("status", help="queues, workers, schedules, flags and the last bangs on one screen")
    status.add_argument("--bangs", type=int, default=defaults.STATUS_BANGS, help="how many of the last bangs (default %(default)s)")
    status.add_argument("--run-dir", help="run folder whose servers to use when REDIS_URL/DATABASE_URL are unset")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=run_status)
