"""``agent-gateway``: serve the dashboard and the live stream with uvicorn.

At start Redis and PostgreSQL are probed: credentials they refuse stop the process with
one line and exit status ``agentsys.exitcodes.RET_AUTH``; a server not reachable
yet does not (the gateway starts, reports not ready on /readyz and reconnects: in production
dependencies may well start later).
"""

from __future__ import annotations

import argparse

import uvicorn

from agentsys.exitcodes import RET_OK
from agentsys.logging import configure_logging, get_logger
from agentsys.preflight import check_credentials
from agentsys.settings import load
from gateway.app import create_app
from gateway.settings import GatewaySettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-gateway", description=__doc__)
    parser.add_argument("--host", help="bind address (default: GATEWAY_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GATEWAY_PORT, 8080)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"gateway_host": args.host, "gateway_port": args.port}.items() if v is not None}
    settings = load(GatewaySettings, **overrides)
    configure_logging("gateway", level=settings.log_level, fmt=settings.log_format)
    check_credentials("agent-gateway", settings, log=get_logger("gateway"))
    uvicorn.run(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                ws_max_size=settings.gateway_ws_max_message, log_config=None, access_log=False,
                server_header=False,
                # no permessage-deflate: compressing every message once per client serialises
                # a burst's fan-out on the event loop (100 clients x a bang batch); latency first
                ws_per_message_deflate=False)
    return RET_OK


if __name__ == "__main__":
    raise SystemExit(main())
