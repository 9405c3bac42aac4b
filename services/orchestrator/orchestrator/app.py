"""The orchestrator application: a list of routers over shared state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agentsys import db
from agentsys.redis import connect
from orchestrator.routes import health
from orchestrator.settings import OrchestratorSettings


def create_app(settings: OrchestratorSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        db.close_pools()

    app = FastAPI(title="agent-system orchestrator", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.redis = connect(settings.redis)
    app.include_router(health.router)
    return app
