"""``agentctl``: submit and inspect tasks, steer agents, through the orchestrator's API.

The API's URL comes from ``--url``, AGENTCTL_URL or ORCHESTRATOR_URL (default
http://127.0.0.1:8000) and the token from API_TOKEN, each from the environment or
``./.env``. ``replay``, ``indicators``, ``events`` (:mod:`agentctl.pipeline`), ``worker
start|stop`` and ``status`` (:mod:`agentctl.operate`) go through the shared library instead. Output is for people unless ``--json``; an error is one
line on stderr and a non-zero exit status (the ``RET_*`` constants of
:mod:`agentsys.exitcodes`: 401 is RET_AUTH, 404 RET_NOT_FOUND, 413 and 422 RET_INPUT, other
refusals RET_FAILED).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from agentctl import config, operate, output, pipeline
from agentctl.client import ApiError, Client, Unreachable
from agentsys import defaults
from agentsys.exitcodes import (
    RET_AUTH,
    RET_CONNECT,
    RET_FAILED,
    RET_INPUT,
    RET_NOT_FOUND,
    RET_OK,
    RET_TIMEOUT,
    RET_USAGE,
)

__all__ = ["RET_AUTH", "RET_CONNECT", "RET_FAILED", "RET_INPUT", "RET_NOT_FOUND", "RET_OK", "RET_TIMEOUT",
           "RET_USAGE", "main"]

DESCRIPTION = "Submit and inspect tasks, steer agents, through the orchestrator's API."
STATUS_EXIT = {401: RET_AUTH, 404: RET_NOT_FOUND, 413: RET_INPUT, 422: RET_INPUT}
ENDED = {"finished", "failed", "canceled", "stopped"}
PRIORITIES = ("high", "normal", "low")
MAX_WAIT = 60.0
"""The API's longest long poll; longer waits poll again."""


class UsageError(Exception):
    """A command-line value agentctl itself refuses."""


def parse_params(pairs: list[str], raw: str | None) -> dict[str, Any]:
    """``--json-params`` then each ``--param key=value`` (a JSON value, else a string)."""
    params: dict[str, Any] = {}
    if raw:
        try:
            params = json.loads(raw)
        except json.JSONDecodeError as error:
            raise UsageError(f"--json-params is not JSON: {error.msg}") from None
        if not isinstance(params, dict):
            raise UsageError("--json-params must be a JSON object")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r} is not key=value")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def wait_for(client: Client, task_id: str, seconds: float, *, traceback: bool = False) -> dict[str, Any]:
    """The task once ended, or as it is when ``seconds`` have passed (long polls of at most MAX_WAIT)."""
    deadline = time.monotonic() + seconds
    while True:
        found = client.task(task_id, wait=min(MAX_WAIT, max(0.0, deadline - time.monotonic())), traceback=traceback)
        if found["state"] in ENDED or time.monotonic() >= deadline:
            return found  # type: ignore[no-any-return]


def _task_exit(found: dict[str, Any], waited: bool) -> int:
    if not waited:
        return RET_OK
    if found["state"] not in ENDED:
        return RET_TIMEOUT
    return RET_OK if found["state"] == "finished" else RET_FAILED


def run(args: argparse.Namespace, client: Client) -> tuple[Any, str | None, int]:
    """Do the command: ``(data for --json, human text, exit status)``."""
    command = args.command
    if command == "task":
        if args.action == "submit":
            found = client.submit(args.type, parse_params(args.param, args.json_params), args.priority)
            if args.wait:
                found = wait_for(client, found["id"], args.wait)
            return found, output.task(found), _task_exit(found, bool(args.wait))
        if args.action == "show":
            found = wait_for(client, args.id, args.wait, traceback=args.traceback)
            return found, output.task(found), _task_exit(found, bool(args.wait))
        if args.action == "list":
            page = client.tasks(state=args.state, type=args.type, worker=args.worker, since=args.since,
                                until=args.until, limit=args.limit, cursor=args.cursor)
            text = output.table(page["items"], ("id", "type", "state", "priority", "progress", "worker", "created_at"),
                                empty="(no tasks)")
            if page.get("next_cursor"):
                text += f"\nmore: --cursor {page['next_cursor']}"
            return page, text, RET_OK
        found = client.cancel(args.id) if args.action == "cancel" else client.retry(args.id)
        return found, output.task(found), RET_OK
    if command == "agents":
        found = client.agents()
        return found, output.agents(found), RET_OK
    if command == "agent":
        if args.action == "run":
            found = client.run_agent(args.name, args.shard or None, args.priority)
            return found, output.task(found), RET_OK
        found = client.set_agent(args.name, args.action == "enable")
        return found, output.agents([found]), RET_OK
    if command == "queues":
        found = client.queues()
        return found, output.table(found, ("name", "depth", "started", "scheduled", "deferred", "finished", "failed",
                                           "canceled")), RET_OK
    if command == "workers":
        found = client.workers()
        return found, output.workers(found), RET_OK
    found = client.schedules()
    return found, output.schedules(found), RET_OK


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--url", default=argparse.SUPPRESS, help="the API's base URL (default: AGENTCTL_URL, "
                        "ORCHESTRATOR_URL or http://127.0.0.1:8000)")
    top = argparse.ArgumentParser(prog="agentctl", description=DESCRIPTION, parents=[common])
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    task = commands.add_parser("task", help="submit and inspect tasks", parents=[common])
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = actions.add_parser("submit", help="submit a task", parents=[common])
    submit.add_argument("type", help="task type: note, pipeline, backfill, recover, run_agent, reshard, ...")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter; VALUE is JSON when it parses (1, true, [\"AAPL\"]), else text")
    submit.add_argument("--json-params", metavar="JSON", help="all parameters as a JSON object")
    submit.add_argument("--priority", choices=PRIORITIES, default="normal")
    submit.add_argument("--wait", type=float, nargs="?", const=defaults.AGENTCTL_WAIT, default=0, metavar="SECONDS",
                        help=f"wait for the task to end (alone: up to {defaults.AGENTCTL_WAIT:g}s)")
    show = actions.add_parser("show", help="one task", parents=[common])
    show.add_argument("id")
    show.add_argument("--wait", type=float, nargs="?", const=defaults.AGENTCTL_WAIT, default=0, metavar="SECONDS",
                      help=f"wait up to this long for it to end (alone: {defaults.AGENTCTL_WAIT:g}s)")
    show.add_argument("--traceback", action="store_true", help="include the traceback of a failure")
    listing = actions.add_parser("list", help="tasks, newest first", parents=[common])
    listing.add_argument("--state", choices=("queued", "scheduled", "deferred", "started", "finished", "failed",
                                              "canceled", "stopped"))
    listing.add_argument("--type")
    listing.add_argument("--worker")
    listing.add_argument("--since", help="created at or after (ISO 8601)")
    listing.add_argument("--until", help="created before (ISO 8601)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", help="next page (printed after a full page)")
    for name in ("cancel", "retry"):
        action = actions.add_parser(name, help=f"{name} a task", parents=[common])
        action.add_argument("id")

    pipeline.add_commands(commands)  # replay, indicators, events: through the library, no API needed
    operate.add_commands(commands)  # worker start|stop, status: the same, for operators

    commands.add_parser("agents", help="agents: flag, queue depth, workers, breakers", parents=[common])
    agent = commands.add_parser("agent", help="enable, disable or run an agent", parents=[common])
    agent_actions = agent.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name in ("enable", "disable"):
        agent_actions.add_parser(name, help=f"{name} an agent (its next job sees it)",
                                 parents=[common]).add_argument("name")
    agent_run = agent_actions.add_parser("run", help="run an agent now", parents=[common])
    agent_run.add_argument("name")
    agent_run.add_argument("--shard", type=int, action="append", help="a shard (repeat); default: all")
    agent_run.add_argument("--priority", choices=PRIORITIES, default="normal")
    commands.add_parser("queues", help="depth and registry counts per queue", parents=[common])
    commands.add_parser("workers", help="workers and their resources", parents=[common])
    commands.add_parser("schedules", help="named schedules", parents=[common])
    return top


_fail = pipeline.fail


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if hasattr(args, "handler"):
        return pipeline.run(args)  # the library commands: replay, indicators, events, worker, status
    client = Client(config.load(url=getattr(args, "url", None)))
    try:
        data, text, code = run(args, client)
    except UsageError as error:
        return _fail(str(error), RET_USAGE)
    except Unreachable as error:
        return _fail(str(error), RET_CONNECT)
    except ApiError as error:
        return _fail(f"{error.status}: {error.detail}", STATUS_EXIT.get(error.status, RET_FAILED))
    finally:
        client.close()
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else text)
    return code
