"""Talk to our supervisord over its unix socket (XML-RPC): states, starts, parallel restarts."""

from __future__ import annotations

import http.client
import time
import xmlrpc.client
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

STOPPED_STATES = {"STOPPED", "EXITED", "FATAL", "BACKOFF"}
"""States in which a program's process is gone."""
UNREACHABLE = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError)
"""What a call raises when supervisord is not (or no longer) listening."""


class Supervisor:
    """A client of one supervisord."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock

    def call(self, method: str, *args: Any) -> Any:
        """One XML-RPC call (``supervisor.<method>``) on a fresh connection, closed afterwards."""
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1",
                                          transport=SupervisorTransport(None, None, f"unix://{self.sock}"))
        try:
            return getattr(proxy.supervisor, method)(*args)
        finally:
            proxy("close")()

    def alive(self) -> bool:
        try:
            return self.call("getState")["statename"] == "RUNNING"
        except UNREACHABLE:
            return False

    def pid(self) -> int:
        return int(self.call("getPID"))

    def programs(self) -> list[dict[str, Any]]:
        return list(self.call("getAllProcessInfo"))

    def info(self, name: str) -> dict[str, Any]:
        return dict(self.call("getProcessInfo", name))

    def state(self, name: str) -> str:
        return str(self.info(name)["statename"])

    def start(self, names: Iterable[str]) -> None:
        """Start programs without waiting for each (their startsecs run in parallel)."""
        for name in names:
            if self.state(name) not in ("RUNNING", "STARTING"):
                self.call("startProcess", name, False)

    def wait_state(self, names: Iterable[str], states: set[str], *, timeout: float) -> None:
        names = list(names)
        deadline = time.monotonic() + timeout
        while True:
            current = {n: self.state(n) for n in names}
            if all(s in states for s in current.values()):
                return
            if time.monotonic() > deadline:
                late = ", ".join(f"{n} {s}" for n, s in current.items() if s not in states)
                raise TimeoutError(f"still not {'/'.join(sorted(states))} after {timeout:g}s: {late}")
            time.sleep(0.05)

    def stop(self, names: Iterable[str], *, timeout: float = 90) -> None:
        """SIGTERM every named program at once, then wait until all are gone."""
        names = [n for n in names if self.state(n) not in STOPPED_STATES]
        for name in names:
            try:
                self.call("stopProcess", name, False)
            except xmlrpc.client.Fault as fault:
                if "NOT_RUNNING" not in fault.faultString:
                    raise
        self.wait_state(names, STOPPED_STATES, timeout=timeout)

    def restart(self, names: Iterable[str], *, timeout: float = 90) -> None:
        """Stop all named programs in parallel, then start them again."""
        names = list(names)
        self.stop(names, timeout=timeout)
        for name in names:
            self.call("startProcess", name, False)

    def shutdown(self) -> bool:
        """Ask supervisord to stop its programs and exit; False when it cannot be reached."""
        try:
            self.call("shutdown")
            return True
        except xmlrpc.client.Fault:
            return True  # already shutting down
        except UNREACHABLE:
            return False
