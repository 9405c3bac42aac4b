"""Errors of price sources (a price job logs them and carries on with its other symbols)."""

from __future__ import annotations

from agentsys.errors import AgentSysError


class SourceError(AgentSysError):
    """A price source refused a request (bad symbol, bad parameters) or answered something unusable."""


class SourceUnavailable(SourceError):
    """A price source is down, rate-limiting us, or its circuit breaker is open: try again later."""
