"""``GET /metrics``: Prometheus exposition (see :mod:`orchestrator.metrics` for what is measured)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.errors import READ
from orchestrator.security import Read

router = APIRouter(tags=["health"], dependencies=[Read], responses=READ)

EXAMPLE = ('# HELP agentsys_queue_depth jobs waiting in the queue\n# TYPE agentsys_queue_depth gauge\n'
           'agentsys_queue_depth{queue="price"} 0.0\n')


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}, "example": EXAMPLE}}}})
async def metrics(request: Request) -> Response:
    def scrape() -> bytes:
        request.app.state.before_scrape()
        return generate_latest(request.app.state.metrics)

    return Response(await run_in_threadpool(scrape), media_type=CONTENT_TYPE_LATEST)
