"""``agent-worker-health``: exit 0 while this host's worker heartbeat is fresh.

A Docker HEALTHCHECK and a Kubernetes exec probe. It reads RQ's own worker record
(``rq:worker:<name>``), which a stopped worker deletes and a hung one stops refreshing.
"""

from __future__ import annotations

import argparse
import socket
import sys
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.serializers import JSONSerializer

from agentsys import defaults
from agentsys.exitcodes import RET_FAILED, RET_OK
from agentsys.settings import load
from worker.settings import WorkerSettings

UNHEALTHY = RET_FAILED
"""Docker's and Kubernetes' "unhealthy" (:data:`agentsys.exitcodes.RET_FAILED`)."""


def heartbeat_ages(redis: Redis, *, name: str | None) -> dict[str, float | None]:
    """Seconds since each matching worker's last heartbeat (None: never beat)."""
    now = datetime.now(UTC)
    host = socket.gethostname()
    ages: dict[str, float | None] = {}
    for worker in Worker.all(connection=redis, serializer=JSONSerializer):
        if (name and worker.name != name) or (not name and worker.hostname != host):
            continue
        beat = worker.last_heartbeat
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        ages[worker.name] = (now - beat).total_seconds() if beat else None
    return ages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-worker-health", description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="worker name (default: WORKER_NAME, else every worker on this host)")
    parser.add_argument("--max-age", type=float, default=defaults.HEARTBEAT_MAX_AGE, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    settings = load(WorkerSettings)
    name = args.name or settings.worker_name
    try:
        ages = heartbeat_ages(Redis.from_url(settings.redis, socket_connect_timeout=3), name=name)
    except RedisError as error:
        print(f"unhealthy: cannot reach Redis: {error}", file=sys.stderr)
        return UNHEALTHY
    if not ages:
        print(f"unhealthy: no worker {'named ' + name if name else 'on this host'} is registered", file=sys.stderr)
        return UNHEALTHY
    stale = {n: a for n, a in ages.items() if a is None or a > args.max_age}
    if stale:
        print("unhealthy: stale heartbeat: " + ", ".join(f"{n} ({a if a is None else round(a)}s)" for n, a in stale.items()),
              file=sys.stderr)
        return UNHEALTHY
    print("healthy: " + ", ".join(f"{n} ({a:.0f}s)" for n, a in ages.items() if a is not None))
    return RET_OK


if __name__ == "__main__":
    raise SystemExit(main())
