"""Live price sources called over the network by the price agent (``binance``: the ``http`` source).

Their errors are ``agentsys.sources.SourceError`` and ``SourceUnavailable``; the price
agent logs them and goes on with its other symbols.
"""

from agentsys.sources.errors import SourceError, SourceUnavailable

__all__ = ["SourceError", "SourceUnavailable"]
