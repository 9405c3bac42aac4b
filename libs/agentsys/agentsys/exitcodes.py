"""Exit statuses of every program of ours, each with one meaning (dramatiq's ``RET_*``).

The README lists which program uses which. ``RET_USAGE`` is argparse's own status for a bad
command line; ``RET_FAILED`` is also Docker's "unhealthy" for the worker health check.
"""

from __future__ import annotations

RET_OK = 0
"""Done as asked."""
RET_FAILED = 1
"""Ran, and the answer is no: a task failed, a worker is unhealthy, the stack did not start."""
RET_USAGE = 2
"""A bad command line or argument (a bad worker name, a bad symbol, not key=value)."""
RET_INPUT = 3
"""Bad input data: an unreadable or invalid CSV, a request the API refused as invalid."""
RET_CONNECT = 4
"""Redis, PostgreSQL or the API cannot be reached."""
RET_TIMEOUT = 5
"""The wait for a task ended before the task did."""
RET_AUTH = 6
"""Credentials refused: the API's token, or Redis's or PostgreSQL's user and password."""
RET_NOT_FOUND = 7
"""No such task, agent, schedule or symbol."""
RET_CONFIG = 8
"""A setting (environment variable or ``.env``) is invalid."""
RET_NOT_RUNNING = 9
"""Process mode: no stack is running in this run folder."""
