"""The ``note`` task: the original three-service design's ``{"description", "priority"}``."""

from __future__ import annotations

from typing import Any

import psycopg

from worker.context import JobContext
from worker.runtime import task_job


def _note(ctx: JobContext, conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    description = params.get("description")
    if not isinstance(description, str):
        raise ValueError("a note needs a 'description' string")
    return {"description": description, "recorded_by": ctx.worker}


run = task_job(_note)
