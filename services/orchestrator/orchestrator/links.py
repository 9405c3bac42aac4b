"""OpenAPI links: which later calls take their parameters from a response.

They document the API's workflows (submit a task, then read, cancel or retry it) and let
schemathesis chain calls in its stateful tests. Targets are named by ``operationRef`` (method
and path, both part of the contract) rather than by FastAPI's generated operationIds.
"""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]


def ref(method: str, path: str) -> str:
    """``operationRef`` of a route of this document, e.g. ``#/paths/~1tasks~1{task_id}/get``."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def link(method: str, path: str, description: str, parameters: dict[str, str]) -> dict[str, Any]:
    """One link; ``parameters`` map ``location.name`` of the target to runtime expressions."""
    return {"operationRef": ref(method, path), "description": description, "parameters": parameters}


def with_links(responses: Responses, status: int, links: dict[str, Any]) -> Responses:
    """``responses`` with ``links`` added to the ``status`` response (its other keys kept)."""
    return {**responses, status: {**responses.get(status, {}), "links": links}}


TASK_ID = "$response.body#/id"
TASK_LINKS = {
    "GetTask": link("GET", "/tasks/{task_id}", "read the task (long-poll with ?wait=)", {"path.task_id": TASK_ID}),
    "CancelTask": link("POST", "/tasks/{task_id}/cancel", "cancel the task before it ends", {"path.task_id": TASK_ID}),
    "RetryTask": link("POST", "/tasks/{task_id}/retry", "run the task again once it failed or stopped",
                      {"path.task_id": TASK_ID}),
}
"""From a response that is a task (``TaskOut``) to the routes over that task."""

FIRST_SYMBOL = "$response.body#/0/symbol"
SYMBOL_LINKS = {
    "GetHistory": link("GET", "/symbols/{symbol}/history", "the first added symbol's history",
                       {"path.symbol": FIRST_SYMBOL}),
    "DeleteSymbol": link("DELETE", "/symbols", "delete the first added symbol", {"query.symbol": FIRST_SYMBOL}),
}
"""From ``POST /symbols`` (a list of symbols) to the routes over one symbol."""

SCHEDULE_NAME = "$response.body#/name"
SCHEDULE_LINKS = {
    "GetSchedule": link("GET", "/schedules/{name}", "read the schedule", {"path.name": SCHEDULE_NAME}),
    "DeleteSchedule": link("DELETE", "/schedules/{name}", "delete the schedule", {"path.name": SCHEDULE_NAME}),
}
"""From ``PUT /schedules/{name}`` (a schedule) to the routes over that schedule."""
