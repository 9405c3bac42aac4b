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
