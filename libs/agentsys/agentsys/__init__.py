"""Shared library of agent-system: imported by every service, never run on its own."""

__version__ = "0.1.0"
