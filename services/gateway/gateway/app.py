"""The gateway application: dashboard, live stream (``/ws``), ``/api`` proxy, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from agentsys import db, defaults
from agentsys.keys import Keys
from gateway import bangs, protocol, proxy, ws
from gateway.broadcast import Broadcaster, Subscriber
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: GatewaySettings) -> FastAPI:
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            redis = Redis.from_url(settings.redis, socket_connect_timeout=defaults.CONNECT_TIMEOUT,
                                   socket_keepalive=True)
            stack.push_async_callback(redis.aclose)
            pool = AsyncConnectionPool(settings.database, min_size=1, max_size=4, open=False,
                                       configure=bangs.configure, name="gateway",
                                       kwargs={"connect_timeout": defaults.CONNECT_TIMEOUT, "options": db.OPTIONS})
            await pool.open(wait=False)
            stack.push_async_callback(pool.close)
            http = httpx.AsyncClient(timeout=httpx.Timeout(settings.proxy_read_timeout,
                                                           connect=settings.proxy_connect_timeout),
                                     limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                                     follow_redirects=False, trust_env=False)
            stack.push_async_callback(http.aclose)

            def render(kind: str, message: dict[str, Any], sub: Subscriber,
                       cache: dict[Hashable, str | None]) -> str | None:
                cursor = tail.cursor(sub.floor) if kind == "bang" else None
                return protocol.render(kind, message, sub.filter, cursor=cursor, cache=cache)

            tail = bangs.BangTail(pool, deliver=lambda message: broadcaster.fanout("bang", message),
                                  interval=settings.gateway_reconcile_interval, metrics=metrics)
            broadcaster = Broadcaster(redis, Keys(settings.key_prefix).channels(), render=render, metrics=metrics,
                                      hooks={"bang": tail.on_live})
            # Subscribed before the first horizon is taken: no commit falls between the two.
            await stack.enter_async_context(broadcaster)
            await stack.enter_async_context(tail)
            app.state.broadcaster, app.state.tail, app.state.http = broadcaster, tail, http
            yield

    app = FastAPI(title="agent-system gateway", version="0.1.0", lifespan=lifespan,
                  description="The dashboard (`/`), its live stream (`WS /ws`) and the orchestrator's API under `/api`.")
    app.state.settings = settings
    app.state.metrics = metrics
    app.include_router(ws.router)
    app.include_router(proxy.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not subscribed to Redis"}})
    def readyz() -> JSONResponse:
        broadcaster: Broadcaster | None = getattr(app.state, "broadcaster", None)
        subscribed = broadcaster is not None and broadcaster.subscribed.is_set()
        cursor = app.state.tail.cursor() if subscribed else None
        body = {"status": "ready" if subscribed else "not ready", "redis": "subscribed" if subscribed else "down",
                "cursor": cursor}
        return JSONResponse(body, status_code=200 if subscribed else 503)

    @app.get("/metrics", tags=["health"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
