"""``POST /tasks`` under load: concurrent submissions share one INSERT and one Redis pipeline.

A request hands its submission to the process's :class:`SubmitBatcher` and awaits the
outcome. The batcher takes whatever is waiting, submits it all with
:func:`agentsys.tasks.submit_many` on one pooled connection in one worker thread, and
answers every request of the batch. There is no timer: a lone request goes at once, and
while batches are in flight (at most IN_FLIGHT) the next one gathers, so batches grow with
the load and the per-request cost shrinks (two round trips per batch instead of six per
request).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from anyio import to_thread
from redis import Redis

from agentsys import db, tasks
from agentsys.keys import Keys
from agentsys.models import TaskRun

MAX_BATCH = 256
"""Submissions per batch at most (bounds one INSERT and one pipeline)."""
IN_FLIGHT = 2
"""Batches submitting at once: one gathers (and packs in Python) while the other waits on
PostgreSQL's commit and Redis, so neither wait leaves the process idle."""


@dataclass
class SubmitBatcher:
    """One per app; bound lazily to the event loop that first uses it."""

    redis: Redis
    keys: Keys
    database: str
    _waiting: list[tuple[tasks.Submission, asyncio.Future[TaskRun]]] = field(default_factory=list)
    _runners: set[asyncio.Task[None]] = field(default_factory=set)

    async def submit(self, submission: tasks.Submission) -> TaskRun:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskRun] = loop.create_future()
        self._waiting.append((submission, future))
        self._runners = {t for t in self._runners if not t.done() and t.get_loop() is loop}
        if len(self._runners) < IN_FLIGHT:
            runner = asyncio.create_task(self._drain(), name="orchestrator-submit-batcher")
            self._runners.add(runner)
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the requests that arrived together join this batch
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                outcomes = await to_thread.run_sync(self._submit, [s for s, _ in batch])
            except BaseException as error:  # Redis or PostgreSQL down: every request of the batch hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(error, Exception):
                    raise
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _submit(self, submissions: list[tasks.Submission]) -> list[TaskRun | Exception]:
        with db.connection(self.database) as conn:
            return list(tasks.submit_many(self.redis, conn, self.keys, submissions))
