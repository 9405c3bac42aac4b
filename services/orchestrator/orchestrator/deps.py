"""FastAPI dependencies as Annotated aliases: route signatures stay flat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from redis import Redis

from agentsys import db
from agentsys.keys import Keys
from orchestrator.settings import OrchestratorSettings


def get_settings(request: Request) -> OrchestratorSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[OrchestratorSettings, Depends(get_settings)]


def get_redis(request: Request) -> Redis:
    return request.app.state.redis  # type: ignore[no-any-return]


RedisDep = Annotated[Redis, Depends(get_redis)]


def get_keys(settings: SettingsDep) -> Keys:
    return Keys(settings.key_prefix)


KeysDep = Annotated[Keys, Depends(get_keys)]


def get_db(settings: SettingsDep) -> Iterator[psycopg.Connection]:
    with db.connection(settings.database) as conn:
        yield conn


DbDep = Annotated[psycopg.Connection, Depends(get_db)]
