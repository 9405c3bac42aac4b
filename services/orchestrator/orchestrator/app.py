"""The orchestrator application: routers over shared state, plus errors, auth, metrics, CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from agentsys import db
from agentsys.keys import Keys
from agentsys.logging import get_logger
from agentsys.redis import connect
from orchestrator import errors, metrics
from orchestrator.batching import SubmitBatcher
from orchestrator.middleware import BodyLimitMiddleware, HttpMetrics, MetricsMiddleware
from orchestrator.routes import agents, events, health, inspect, schedules, symbols, tasks
from orchestrator.routes import metrics as metrics_route
from orchestrator.settings import OrchestratorSettings

DESCRIPTION = """Submit and inspect tasks, steer agents, read symbols, history and events.

Writes need `Authorization: Bearer $API_TOKEN`; reads too when `API_READ_TOKEN_REQUIRED=true`.
Errors are JSON: `{"detail": "..."}`, or for a 422 the list of refused fields."""

log = get_logger("orchestrator")


def create_app(settings: OrchestratorSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.api_token is None:
            log.warning("API_TOKEN is not set: reads only, every write is refused (401)")
        yield
        db.close_pools()

    app = FastAPI(title="agent-system orchestrator", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.redis = connect(settings.redis)
    app.state.batcher = SubmitBatcher(app.state.redis, Keys(settings.key_prefix), settings.database)
    app.state.metrics, app.state.before_scrape = metrics.build(app.state.redis, Keys(settings.key_prefix),
                                                               settings.database)
    for router in (health.router, metrics_route.router, tasks.router, agents.router, symbols.router, events.router,
                   inspect.router, schedules.router):
        app.include_router(router)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)  # innermost
    app.add_middleware(errors.ShieldMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(app.state.metrics))
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["Location", "X-Cache"])
    return app
