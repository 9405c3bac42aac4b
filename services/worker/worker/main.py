"""``agent-worker``: run one worker on the queues WORKER_QUEUES names (all by default)."""

from __future__ import annotations

import argparse

import psycopg
from redis.exceptions import RedisError

from agentsys import db, tasks
from agentsys.errors import first_line
from agentsys.exitcodes import RET_CONNECT, RET_OK
from agentsys.logging import configure_logging, get_logger
from agentsys.redis import connect
from agentsys.settings import load
from worker.app import AgentWorker
from worker.settings import WorkerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: WORKER_NAME, else host.pid)")
    parser.add_argument("--queues", help="comma-separated queues (default: WORKER_QUEUES)")
    parser.add_argument("--max-jobs", type=int, help="quit after this many jobs")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.queues:
        overrides["worker_queues"] = args.queues
    if args.name:
        overrides["worker_name"] = args.name
    settings = load(WorkerSettings, **overrides)
    configure_logging("worker", level=settings.log_level, fmt=settings.log_format)
    log = get_logger("worker")
    redis = connect(settings.redis)
    try:
        redis.ping()
    except RedisError as error:
        log.error("cannot reach Redis", error=first_line(error))
        return RET_CONNECT
    try:
        with db.connect(settings.database) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        log.error("cannot reach PostgreSQL", error=first_line(error))
        return RET_CONNECT
    queues = [tasks.queue(redis, name) for name in settings.queues]
    worker = AgentWorker(queues, connection=redis, settings=settings)
    worker.work(burst=args.burst, max_jobs=args.max_jobs, logging_level=settings.log_level,
                with_scheduler=settings.worker_with_scheduler and not args.burst)
    return RET_OK


if __name__ == "__main__":
    raise SystemExit(main())
