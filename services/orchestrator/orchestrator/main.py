"""``agent-orchestrator``: serve the API with uvicorn.

At start Redis and PostgreSQL are probed: credentials they refuse stop the process with
one line and exit status ``agentsys.exitcodes.RET_AUTH``; a server not reachable
yet does not (the API starts, reports not ready on /readyz and reconnects: in production
dependencies may well start later).
"""

from __future__ import annotations

import argparse

import uvicorn

from agentsys.exitcodes import RET_OK
from agentsys.logging import configure_logging, get_logger
from agentsys.preflight import check_credentials
from agentsys.settings import load
from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-orchestrator", description=__doc__)
    parser.add_argument("--host", help="bind address (default: API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: API_PORT, 8000)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"api_host": args.host, "api_port": args.port}.items() if v is not None}
    settings = load(OrchestratorSettings, **overrides)
    configure_logging("orchestrator", level=settings.log_level, fmt=settings.log_format)
    check_credentials("agent-orchestrator", settings, log=get_logger("orchestrator"))
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_config=None, access_log=False, server_header=False)
    return RET_OK


if __name__ == "__main__":
    raise SystemExit(main())
