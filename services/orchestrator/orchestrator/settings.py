"""Orchestrator settings, from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from agentsys.settings import CommonSettings, is_loopback, load


class OrchestratorSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _token_off_loopback(self) -> OrchestratorSettings:
        if not is_loopback(self.api_host) and self.api_token is None:
            raise ValueError(f"API_TOKEN is required when API_HOST={self.api_host} is not a loopback address")
        return self


@lru_cache(maxsize=1)
def get_settings() -> OrchestratorSettings:
    return load(OrchestratorSettings)
