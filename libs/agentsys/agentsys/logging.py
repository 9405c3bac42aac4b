"""structlog set-up, called once per entry point (never at import).

Our own events and the standard-library records of rq and uvicorn leave through the
same renderer, so every line of every process is one JSON object.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

_configured: dict[str, Any] = {}

SECRET_FIELDS = frozenset({"api_token", "token", "password", "authorization", "secret"})
"""Event keys whose values are never written out."""


def _add_pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # Read at log time: job processes are forks of the worker.
    event.setdefault("pid", os.getpid())
    return event


def _redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in SECRET_FIELDS.intersection(event):
        event[key] = "***"
    return event


def _service(name: str):  # type: ignore[no-untyped-def]
    def add(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event.setdefault("service", name)
        return event

    return add


def configure_logging(
    service: str,
    *,
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: Any = None,
) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer."""
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _service(service),
        _add_pid,
        _redact,
    ]
    renderer: Any
    if console:
        renderer = structlog.dev.ConsoleRenderer()
        tail: list[Any] = []
    else:
        renderer = structlog.processors.JSONRenderer()
        tail = [structlog.processors.dict_tracebacks]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers.clear()  # the entry point owns the process's output
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("rq.worker", "rq.job", "rq.queue", "uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _configured["service"] = service


def is_configured() -> bool:
    return bool(_configured)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
