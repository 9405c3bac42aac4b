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


class TaskTimeout(AgentSysError):
    """A task did not end before the deadline."""


class InputError(AgentSysError):
    """Input data was refused; nothing was written."""
