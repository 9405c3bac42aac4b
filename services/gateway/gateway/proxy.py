"""``/api/*``: the orchestrator's API through the gateway, so the dashboard is one origin.

Bodies stream both ways (a replay CSV in, a long poll out), the client's headers pass
(``Authorization`` included, untouched and never logged) less the hop-by-hop ones, and
an orchestrator that cannot be reached is a 502 (504 when it is too slow) with a JSON
``detail``, like every error of the API.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from agentsys.logging import get_logger

log = get_logger("gateway.proxy")
router = APIRouter()

PREFIX = "/api"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
"""Headers that belong to one connection, not to the message (RFC 9110 section 7.6.1)."""
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _end_to_end(headers: Iterable[tuple[str, str]], *, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    pairs = list(headers)
    listed = {t.strip().lower() for k, v in pairs if k.lower() == "connection" for t in v.split(",")}
    skip = HOP_BY_HOP | listed | set(drop)
    return [(k, v) for k, v in pairs if k.lower() not in skip]


def _location(value: str, upstream: str) -> str:
    """A ``Location`` the orchestrator sent, as the browser must follow it through the gateway."""
    if value.startswith(upstream):
        value = value[len(upstream):] or "/"
    return PREFIX + value if value.startswith("/") else value


@router.api_route(PREFIX + "/{path:path}", methods=METHODS, include_in_schema=False)
async def proxy(request: Request) -> Response:
    client: httpx.AsyncClient = request.app.state.http
    upstream: str = request.app.state.settings.orchestrator
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    target = upstream + raw_path.decode("latin-1")[len(PREFIX):]
    if request.url.query:
        target += "?" + request.url.query
    headers = _end_to_end(request.headers.items(), drop=("host",))
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    headers += [("x-forwarded-for", f"{forwarded}, {peer}" if forwarded else peer),
                ("x-forwarded-proto", request.url.scheme), ("x-forwarded-host", request.headers.get("host", ""))]
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    outgoing = client.build_request(request.method, target, headers=headers,
                                    content=request.stream() if has_body else None)
    try:
        answer = await client.send(outgoing, stream=True)
    except httpx.TimeoutException:
        request.app.state.metrics.proxied.labels("timeout").inc()
        return JSONResponse({"detail": "the orchestrator did not answer in time"}, status_code=504)
    except httpx.TransportError as error:
        request.app.state.metrics.proxied.labels("unreachable").inc()
        log.warning("orchestrator unreachable", url=upstream, error=str(error) or type(error).__name__)
        return JSONResponse({"detail": f"the orchestrator at {upstream} cannot be reached"}, status_code=502)
    request.app.state.metrics.proxied.labels("answered").inc()
    back = [(k, _location(v, upstream) if k.lower() == "location" else v)
            for k, v in _end_to_end(answer.headers.multi_items())]
    response = StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                 background=BackgroundTask(answer.aclose))
    response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in back]
    return response
