"""Agents: runtime flags (read by workers at job start), queue depth, workers, breakers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from redis import Redis

from agentsys import agents, flags, keys, status
from agentsys.keys import Keys
from agentsys.models import Priority, TaskRun
from orchestrator import submit as submitting
from orchestrator.deps import KeysDep, RedisDep
from orchestrator.errors import READ, WRITE
from orchestrator.links import TASK_LINKS, with_links
from orchestrator.schemas import TaskOut, TaskSubmit
from orchestrator.security import Read, Write

router = APIRouter(prefix="/agents", tags=["agents"], dependencies=[Read], responses=READ)

AgentName = Annotated[agents.Name, Path(description="agent name")]

AGENT_EXAMPLE: dict[str, Any] = {"name": "price", "enabled": True, "queue": "price", "queue_depth": 0, "queue_depth_low": 0,
                 "workers": ["host.4242"], "breakers": [{"source": "http", "state": "closed", "failures": 0,
                                                         "opened_at": None}]}


class Breaker(BaseModel):
    source: str
    state: str = Field(description="closed, open or half_open")
    failures: int = 0
    opened_at: float | None = Field(default=None, description="epoch seconds")


class AgentOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [AGENT_EXAMPLE]})
    name: str
    enabled: bool = Field(description="the runtime flag; workers read it at job start")
    queue: str
    queue_depth: int = Field(description="jobs waiting on the agent's queue")
    queue_depth_low: int = Field(description="jobs waiting on its low-priority twin")
    workers: list[str] = Field(description="workers listening on either queue")
    breakers: list[Breaker] = Field(description="circuit breakers of the agent's price sources")


class AgentFlag(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})
    enabled: bool


class AgentRun(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"shards": [0, 1], "priority": "high"}]})
    shards: list[Annotated[int, Field(ge=0, le=1_000_000)]] | None = Field(
        default=None, max_length=100_000, description="shards to run; null: every shard")
    priority: Priority = Priority.normal


def describe(redis: Redis, k: Keys, names: tuple[str, ...] = keys.AGENTS) -> list[dict[str, Any]]:
    enabled = flags.agent_flags(redis, k)
    depth = {row["name"]: row["depth"] for row in status.queue_stats(redis)}
    chosen = [agents.get(a) for a in names]
    serving = status.workers_by_queue(redis, [q for a in chosen for q in (a.queue, keys.low(a.queue))])
    return [{
        "name": a.name, "enabled": enabled[a.name], "queue": a.queue, "queue_depth": depth[a.queue],
        "queue_depth_low": depth[keys.low(a.queue)],
        "workers": sorted(set(serving[a.queue]) | set(serving[keys.low(a.queue)])),
        "breakers": status.breakers(redis, k, a.breaker_sources),
    } for a in chosen]


@router.get("", response_model=list[AgentOut], summary="Every agent: flag, queue depth, workers, breakers")
def list_agents(redis: RedisDep, k: KeysDep) -> list[dict[str, Any]]:
    return describe(redis, k)


@router.put("/{name}", response_model=AgentOut, dependencies=[Write], responses=WRITE,
            summary="Enable or disable an agent (takes effect on its next job, no restart)")
def set_flag(name: AgentName, body: AgentFlag, redis: RedisDep, k: KeysDep) -> dict[str, Any]:
    flags.set_enabled(redis, k, name, body.enabled)
    return describe(redis, k, (name,))[0]


@router.post("/{name}/run", status_code=202, response_model=TaskOut, dependencies=[Write],
             responses=with_links(WRITE, 202, TASK_LINKS),
             summary="Run an agent now on some or all shards (a run_agent task)")
async def run_agent(name: AgentName, request: Request, response: Response,
                    body: Annotated[AgentRun | None, Body()] = None) -> TaskRun:
    body = body or AgentRun()
    submit = TaskSubmit(type="run_agent", params={"agent": name, "shards": body.shards}, priority=body.priority)
    return submitting.accepted(request, response, await submitting.submit(request.app.state.batcher, submit))
