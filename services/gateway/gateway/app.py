"""The gateway application."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    app = FastAPI(title="agent-system gateway", version="0.1.0")
    app.state.settings = settings

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
