"""Redis connections: one client per process, rebuilt after a fork."""

from __future__ import annotations

import os

from redis import Redis

from agentsys import defaults

_clients: dict[tuple[int, str], Redis] = {}


def connect(url: str) -> Redis:
    """A Redis client for ``url`` owned by this process (``rediss://`` accepted)."""
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        client = Redis.from_url(
            url,
            socket_connect_timeout=defaults.CONNECT_TIMEOUT,
            health_check_interval=30,
            retry_on_timeout=True,
        )
        _clients[key] = client
    return client


def _forget() -> None:
    # A forked child must not share its parent's sockets.
    _clients.clear()


os.register_at_fork(after_in_child=_forget)
