"""Gateway settings, from the environment."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, model_validator

from agentsys import defaults
from agentsys.settings import CommonSettings, is_loopback


class GatewaySettings(CommonSettings):
    gateway_host: str = defaults.GATEWAY_HOST
    gateway_port: int = Field(default=defaults.GATEWAY_PORT, ge=1, le=65535)
    orchestrator_url: AnyHttpUrl = AnyHttpUrl(defaults.ORCHESTRATOR_URL)

    gateway_client_buffer: int = Field(default=defaults.GATEWAY_CLIENT_BUFFER, ge=1, le=1_000_000, description=(
        "messages queued per WebSocket client; a client that falls this far behind is closed (code 4008)"))
    gateway_backfill_limit: int = Field(default=defaults.GATEWAY_BACKFILL_LIMIT, ge=1, le=10_000,
                                        description="bang events per backfill reply (more come in pages)")
    gateway_recent_bangs: int = Field(default=defaults.GATEWAY_RECENT_BANGS, ge=0, le=10_000,
                                      description="bang events a backfill without a cursor returns")
    gateway_reconcile_interval: float = Field(default=defaults.GATEWAY_RECONCILE_INTERVAL, gt=0, le=60, description=(
        "seconds between two reads of bang_events that advance the resume cursor and deliver "
        "events whose Pub/Sub message was lost"))
    gateway_close_timeout: float = Field(default=defaults.GATEWAY_CLOSE_TIMEOUT, gt=0, le=60,
                                         description="seconds to wait for a dropped client's close frame to go out")
    gateway_ws_max_message: int = Field(default=defaults.GATEWAY_WS_MAX_MESSAGE, ge=1024, le=16 * 1024 * 1024,
                                        description="largest message a client may send, in bytes")
    gateway_ws_origins: str = Field(default="", description=(
        "comma-separated origins allowed to open /ws besides the page's own (browsers send Origin; others need none)"))
    proxy_connect_timeout: float = Field(default=defaults.PROXY_CONNECT_TIMEOUT, gt=0, le=120, description="seconds to connect to the orchestrator")
    proxy_read_timeout: float = Field(default=defaults.PROXY_READ_TIMEOUT, gt=0, le=600, description=(
        "seconds to wait for the orchestrator's next bytes (above its 60 s long poll)"))

    @model_validator(mode="after")
    def _token_off_loopback(self) -> GatewaySettings:
        if not is_loopback(self.gateway_host) and self.api_token is None:
            raise ValueError(f"API_TOKEN is required when GATEWAY_HOST={self.gateway_host} is not a loopback address")
        return self

    @property
    def ws_origin_list(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.gateway_ws_origins.split(",") if o.strip())

    @property
    def orchestrator(self) -> str:
        """The orchestrator's base URL, without a trailing slash."""
        return str(self.orchestrator_url).rstrip("/")
