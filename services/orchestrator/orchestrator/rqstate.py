"""The orchestrator's side of the status layer (:mod:`agentsys.status` computes the rest)."""

from __future__ import annotations

BREAKER_SOURCES = {"price": ("synthetic", "http")}
"""Price sources with a circuit breaker, per agent."""
