"""Orchestrator settings, from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from agentsys import defaults
from agentsys.settings import CommonSettings, is_loopback, load


class OrchestratorSettings(CommonSettings):
    api_host: str = defaults.API_HOST
    api_port: int = Field(default=defaults.API_PORT, ge=1, le=65535)
    api_read_token_required: bool = Field(default=False, description="reads need the bearer token too")
    api_max_body_bytes: int = Field(default=defaults.API_MAX_BODY_BYTES, ge=1024, le=1024**3,
                                    description="largest request body, in bytes (a replay CSV is the big one)")
    cors_origins: str = Field(default="", description="comma-separated allowed origins; empty: CORS closed")
    history_cache_ttl: int = Field(default=defaults.HISTORY_CACHE_TTL, ge=1, le=86_400,
                                   description="seconds a cached symbol history lives")

    @model_validator(mode="after")
    def _token_off_loopback(self) -> OrchestratorSettings:
        if not is_loopback(self.api_host) and self.api_token is None:
            raise ValueError(f"API_TOKEN is required when API_HOST={self.api_host} is not a loopback address")
        if self.api_read_token_required and self.api_token is None:
            raise ValueError("API_TOKEN is required when API_READ_TOKEN_REQUIRED=true")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@lru_cache(maxsize=1)
def get_settings() -> OrchestratorSettings:
    return load(OrchestratorSettings)
