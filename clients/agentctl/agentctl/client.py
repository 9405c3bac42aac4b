"""A small client of the orchestrator's API: one method per route agentctl uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from agentctl.config import Config
from agentsys import defaults


class ApiError(Exception):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Unreachable(Exception):
    """The API could not be reached."""


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(detail, list):  # FastAPI's validation errors: name each field
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    return str(detail)


class Client:
    def __init__(self, config: Config, *, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = httpx.Client(base_url=config.url, headers=headers, timeout=defaults.AGENTCTL_HTTP_TIMEOUT, transport=transport)
        self.url = config.url

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, timeout: float = defaults.AGENTCTL_HTTP_TIMEOUT, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, timeout=timeout, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(f"cannot reach the API at {self.url}: {error or type(error).__name__}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return response.json() if response.content else None

    # tasks
    def submit(self, task_type: str, params: dict[str, Any], priority: str) -> Any:
        return self.request("POST", "/tasks", json={"type": task_type, "params": params, "priority": priority})

    def replay(self, csv_text: bytes, *, priority: str, **periods: Any) -> Any:
        query = {k: v for k, v in {**periods, "priority": priority}.items() if v is not None}
        return self.request("POST", "/tasks/replay", params=query, content=csv_text,
                            headers={"Content-Type": "text/csv"}, timeout=120)

    def task(self, task_id: str, *, wait: float = 0, traceback: bool = False) -> Any:
        params = {"wait": wait, "traceback": str(traceback).lower()}
        return self.request("GET", f"/tasks/{quote(task_id, safe='')}", params=params, timeout=defaults.AGENTCTL_HTTP_TIMEOUT + wait)

    def tasks(self, **filters: Any) -> Any:
        return self.request("GET", "/tasks", params={k: v for k, v in filters.items() if v is not None})

    def cancel(self, task_id: str) -> Any:
        return self.request("POST", f"/tasks/{quote(task_id, safe='')}/cancel")

    def retry(self, task_id: str) -> Any:
        return self.request("POST", f"/tasks/{quote(task_id, safe='')}/retry")

    # agents, queues, workers, schedules
    def agents(self) -> Any:
        return self.request("GET", "/agents")

    def set_agent(self, name: str, enabled: bool) -> Any:
        return self.request("PUT", f"/agents/{quote(name, safe='')}", json={"enabled": enabled})

    def run_agent(self, name: str, shards: list[int] | None, priority: str) -> Any:
        return self.request("POST", f"/agents/{quote(name, safe='')}/run", json={"shards": shards, "priority": priority})

    def queues(self) -> Any:
        return self.request("GET", "/queues")

    def workers(self) -> Any:
        return self.request("GET", "/workers")

    def schedules(self) -> Any:
        return self.request("GET", "/schedules")
