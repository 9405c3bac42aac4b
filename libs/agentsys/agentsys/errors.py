"""The library's errors: a small hierarchy, one line each."""

from __future__ import annotations


class AgentSysError(Exception):
    """Base of every error this system raises on purpose."""


class ConfigError(AgentSysError):
    """A setting is missing or invalid."""


class TaskNotFound(AgentSysError):
    """No task has this id."""


class UnknownTaskType(AgentSysError):
    """No task type has this name."""


class TaskExists(AgentSysError):
    """A task with this id was submitted already (a scheduler's tick, a client's retry)."""


class TaskTimeout(AgentSysError):
    """A task did not end before the deadline."""


class InputError(AgentSysError):
    """Input data was refused; nothing was written."""


def first_line(error: BaseException, *, fallback: str | None = None) -> str:
    """The first non-blank line of ``str(error)``, for one-line logs and messages.

    Driver errors (psycopg's above all) carry a detail block after the first line. An error
    with no text gives ``fallback``, by default its class name.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines:
        return lines[0]
    return type(error).__name__ if fallback is None else fallback
