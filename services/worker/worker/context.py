"""What a job needs, built inside the job process (after RQ's fork)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from redis import Redis
from rq import get_current_job

from agentsys import db
from agentsys.keys import Keys
from agentsys.redis import connect
from worker.settings import WorkerSettings, get_settings


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: WorkerSettings
    keys: Keys
    redis: Redis
    worker: str | None
    job_id: str | None

    def connect_db(self) -> psycopg.Connection:
        return db.connect(self.settings.database)


def current() -> JobContext:
    settings = get_settings()
    job = get_current_job()
    return JobContext(
        settings=settings,
        keys=Keys(settings.key_prefix),
        redis=connect(settings.redis),
        worker=job.worker_name if job else None,
        job_id=job.id if job else None,
    )
