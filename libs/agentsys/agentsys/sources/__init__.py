"""Price sources: synthetic (deterministic), CSV files, and the circuit breaker of live sources.

``csvfile.parse_csv`` and ``synthetic.prices`` are pure functions; ``breaker`` keeps its
state in Redis so every worker shares it. The HTTP adapters live with the worker
(``worker.sources``), the only service that calls them.
"""

from agentsys.sources.errors import SourceError, SourceUnavailable

__all__ = ["SourceError", "SourceUnavailable"]
