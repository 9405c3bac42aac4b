"""Gateway settings, from the environment."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, model_validator

from agentsys.settings import CommonSettings, is_loopback


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    orchestrator_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")

    @model_validator(mode="after")
    def _token_off_loopback(self) -> GatewaySettings:
        if not is_loopback(self.gateway_host) and self.api_token is None:
            raise ValueError(f"API_TOKEN is required when GATEWAY_HOST={self.gateway_host} is not a loopback address")
        return self
