"""Wait on conditions with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], *, timeout: float = 30, interval: float = 0.05,
          what: str | Callable[[], str] = "condition") -> T:
    """Return check()'s first truthy value; fail the test when the deadline passes.

    ``what`` may be a function: it is called at the deadline, to say what is still missing.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)
