"""Live price sources called over the network (``binance``: the ``http`` source), and ``fetch``,
which prices symbols from any source for the price agent and the ingest alike.

Their errors are ``agentsys.sources.SourceError`` and ``SourceUnavailable``; the price
agent logs them and goes on with its other symbols.
"""

from agentsys.sources.errors import SourceError, SourceUnavailable

__all__ = ["SourceError", "SourceUnavailable"]
