"""``agentctl replay``, ``indicators`` and ``events``: the pipeline from a terminal.

These talk to Redis and PostgreSQL through the shared library (the same code path as
the orchestrator's ``POST /tasks``), so a replay works with nothing else running: when
no worker serves the agent queues, agentctl runs burst workers itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer

from agentctl import output
from agentsys import db, defaults, keys, migrate, replay, tasks
from agentsys.errors import AgentSysError, InputError, TaskTimeout, first_line
from agentsys.exitcodes import RET_CONNECT, RET_FAILED, RET_INPUT, RET_NOT_FOUND, RET_OK, RET_TIMEOUT, RET_USAGE
from agentsys.keys import Keys
from agentsys.models import TaskRun
from agentsys.settings import CommonSettings, load
from agentsys.symbols import SYMBOL_RE
from agentsys.timefmt import iso

VENV_BIN = Path(sys.executable).parent


class CommandError(Exception):
    """One line for stderr, and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _connect(settings: CommonSettings) -> tuple[Redis, psycopg.Connection]:
    try:
        redis = Redis.from_url(settings.redis, socket_connect_timeout=defaults.CONNECT_TIMEOUT)
        redis.ping()
    except Exception as error:
        raise CommandError(f"cannot reach Redis at {_safe(settings.redis)}: {first_line(error)}", RET_CONNECT) from None
    try:
        migrate.migrate(settings.database)
        conn = db.connect(settings.database)  # the shared factory: timestamps come back in UTC
    except psycopg.Error as error:
        raise CommandError(f"cannot reach PostgreSQL at {_safe(settings.database)}: {first_line(error)}",
                           RET_CONNECT) from None
    return redis, conn


def _safe(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def agents_served(redis: Redis) -> bool:
    """True when live workers cover the price, indicator and bang queues."""
    served: set[str] = set()
    for worker in Worker.all(connection=redis, serializer=JSONSerializer):
        if worker.get_state() in ("suspended",):
            continue
        served.update(worker.queue_names())
    return set(keys.AGENTS) <= served


def start_burst_workers(settings: CommonSettings, count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": settings.redis, "DATABASE_URL": settings.database,
           "KEY_PREFIX": settings.key_prefix, "WORKER_WITH_SCHEDULER": "false", "LOG_FORMAT": "json"}
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(count):
        with open(log_dir / f"agentctl-burst-{i}.log", "ab") as out:
            procs.append(subprocess.Popen([str(VENV_BIN / "agent-worker"), "--burst",
                                           "--name", f"agentctl-{os.getpid()}-{i}"],
                                          env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def _bar(run: TaskRun, began: float) -> str:
    width = 30
    done = int(run.progress * width)
    return f"\r[{'#' * done}{'.' * (width - done)}] {run.progress * 100:5.1f}% {run.state.value:<9} {time.monotonic() - began:6.1f}s"


def run_replay(args: argparse.Namespace) -> int:
    settings = load(CommonSettings)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: {getattr(error, 'strerror', None) or first_line(error)}", RET_INPUT) from None
    redis, conn = _connect(settings)
    began = time.monotonic()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        try:
            run = replay.submit_replay(redis, conn, Keys(settings.key_prefix), csv_text=text, fast=args.fast,
                                       mid=args.mid, slow=args.slow, replace=args.replace)
        except InputError as error:
            raise CommandError(f"{path}: {error}", RET_INPUT) from None
        own = not agents_served(redis)
        tty = sys.stderr.isatty() and not args.json
        deadline = time.monotonic() + args.timeout
        while True:
            run = tasks.get(conn, run.id)
            conn.rollback()
            if tty:
                print(_bar(run, began), end="", file=sys.stderr, flush=True)
            if run.ended:
                break
            if own and all(p.poll() is not None for p in workers):
                workers = start_burst_workers(settings, defaults.BURST_WORKERS, Path(args.log_dir))
            if time.monotonic() > deadline:
                raise CommandError(f"task {run.id} still {run.state.value} after {args.timeout:g}s", RET_TIMEOUT)
            time.sleep(0.1)
        if tty:
            print(file=sys.stderr)
    finally:
        for proc in workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        conn.close()
        redis.close()
    seconds = round(time.monotonic() - began, 3)
    if run.state.value != "finished":
        raise CommandError(f"replay {run.state.value}: {run.error or 'no reason recorded'}", RET_FAILED)
    summary = {"task_id": run.id, **(run.result or {}), "seconds": seconds, "workers": "own" if own else "running"}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"replayed {summary.get('symbols', 0)} symbols, {summary.get('ticks', 0)} ticks, "
              f"{summary.get('bangs', 0)} bangs in {seconds:.2f}s (task {run.id}, {summary['workers']} workers)")
    return RET_OK


INDICATOR_FIELDS = ("symbol", "ts", "price", "ema_fast", "ema_mid", "ema_slow", "state")
EVENT_FIELDS = ("symbol", "ts", "from_state", "to_state", "price", "ema_fast", "ema_mid", "ema_slow")


def _rows(query: str, params: tuple[Any, ...], fields: tuple[str, ...], *, symbol: str | None = None
          ) -> list[dict[str, Any]]:
    """The query's rows as dicts; with ``symbol``, no rows for a symbol not in the universe is an
    error, not an empty answer (checked on the same connection)."""
    if symbol is not None and not SYMBOL_RE.match(symbol):
        raise CommandError(f"bad symbol {symbol!r}: expected {SYMBOL_RE.pattern}", RET_USAGE)
    redis, conn = _connect(load(CommonSettings))
    redis.close()
    with conn:
        out = []
        for row in conn.execute(query, params).fetchall():  # type: ignore[arg-type]
            item = dict(zip(fields, row, strict=True))
            item["ts"] = iso(item["ts"], z=True)
            out.append(item)
        if not out and symbol is not None and \
                conn.execute("SELECT 1 FROM symbols WHERE symbol = %s", (symbol,)).fetchone() is None:
            raise CommandError(f"unknown symbol {symbol!r}: not in the universe", RET_NOT_FOUND)
    return out


def run_indicators(args: argparse.Namespace) -> int:
    limit = "" if args.limit is None else "LIMIT %s"
    params: tuple[Any, ...] = (args.symbol,) if args.limit is None else (args.symbol, args.limit)
    rows = _rows(
        "SELECT * FROM (SELECT p.symbol, p.ts, p.price, i.ema_fast, i.ema_mid, i.ema_slow, i.state"
        " FROM prices p LEFT JOIN indicators i USING (symbol, ts) WHERE p.symbol = %s"
        f" ORDER BY p.ts DESC {limit}) newest ORDER BY ts",
        params, INDICATOR_FIELDS, symbol=args.symbol)
    return _print(rows, args.json, INDICATOR_FIELDS, empty=f"no ticks stored for {args.symbol}")


def run_events(args: argparse.Namespace) -> int:
    where, params = ("WHERE symbol = %s", (args.symbol,)) if args.symbol else ("", ())
    rows = _rows(f"SELECT {', '.join(EVENT_FIELDS)} FROM bang_events {where} ORDER BY ts DESC, id DESC LIMIT %s",
                 (*params, args.limit), EVENT_FIELDS, symbol=args.symbol)
    return _print(rows, args.json, EVENT_FIELDS, empty="no bangs")


def _print(rows: list[dict[str, Any]], as_json: bool, fields: tuple[str, ...], *, empty: str) -> int:
    if as_json:
        print(json.dumps(rows))
        return RET_OK
    if not rows:
        print(empty)
        return RET_OK
    print("\n".join(output.grid(fields, [[_cell(r[f]) for f in fields] for r in rows], strip=False)))
    return RET_OK


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def add_commands(sub: Any) -> None:
    """Register the pipeline commands on an argparse subparsers object."""
    p = sub.add_parser("replay", help="run a CSV file through the pipeline and wait for it")
    p.add_argument("file", help="CSV with symbol, ts (or date/time/timestamp) and price (or close) columns")
    p.add_argument("--fast", type=int, help="fast EMA period for the file's symbols")
    p.add_argument("--mid", type=int, help="middle EMA period")
    p.add_argument("--slow", type=int, help="slow EMA period")
    p.add_argument("--replace", action="store_true", help="overwrite differing data (and recompute forward)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default %(default)s)")
    p.add_argument("--log-dir", default=".run/logs", help="where burst workers log (default %(default)s)")
    p.set_defaults(handler=run_replay)
    p = sub.add_parser("indicators", help="stored ticks of a symbol with their EMAs and state")
    p.add_argument("--symbol", required=True)
    p.add_argument("--limit", type=_positive, help="only the newest N ticks")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=run_indicators)
    p = sub.add_parser("events", help="bangs, newest first")
    p.add_argument("--symbol")
    p.add_argument("--limit", type=_positive, default=100, help="at most N (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=run_events)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    """Run a handler with the one-line error contract."""
    try:
        return int(args.handler(args))
    except CommandError as error:
        return fail(str(error), error.status)
    except TaskTimeout as error:
        return fail(str(error), RET_TIMEOUT)
    except AgentSysError as error:
        return fail(str(error), RET_FAILED)


def fail(message: str, status: int) -> int:
    """The error contract: one line on stderr (the first of a multi-line message), and a status."""
    lines = message.strip().splitlines() or ["failed"]
    print(f"agentctl: {lines[0]}", file=sys.stderr)
    return status
