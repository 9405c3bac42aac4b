"""Configuration from the environment (and an optional ``.env``), validated once at start."""

from __future__ import annotations

import ipaddress
import sys
from typing import Literal, TypeVar

from pydantic import Field, PostgresDsn, RedisDsn, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentsys import defaults
from agentsys.exitcodes import RET_CONFIG

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "token", "example", "password"}
"""Values that look like a copied example; refused as secrets outside development."""



class CommonSettings(BaseSettings):
    """Settings every process shares; services subclass it."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = defaults.ENVIRONMENT
    redis_url: RedisDsn = RedisDsn(defaults.REDIS_URL)
    database_url: PostgresDsn = PostgresDsn(defaults.DATABASE_URL)
    key_prefix: str = Field(default=defaults.KEY_PREFIX, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = defaults.LOG_LEVEL
    log_format: Literal["auto", "json", "console"] = defaults.LOG_FORMAT
    api_token: SecretStr | None = None
    shard_size: int = Field(default=defaults.SHARD_SIZE, ge=1, le=defaults.MAX_SHARD_SIZE,
                            description="symbols per shard when symbols are added (POST /symbols, replays)")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_token")
    @classmethod
    def _real_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @property
    def redis(self) -> str:
        return str(self.redis_url)

    @property
    def database(self) -> str:
        return str(self.database_url)


S = TypeVar("S", bound=BaseSettings)


def describe_error(error: ValidationError, cls: type[BaseSettings]) -> str:
    """One line naming each bad variable as it is spelled in the environment."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    parts = []
    for item in error.errors():
        name = (prefix + ".".join(str(p) for p in item["loc"])).upper() or "settings"
        parts.append(f"{name}: {item['msg']}")
    return "; ".join(parts)


def load(cls: type[S], **overrides: object) -> S:
    """Build settings or stop the process with a one-line reason naming the variable."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        print(f"configuration error: {describe_error(error, cls)}", file=sys.stderr)
        raise SystemExit(RET_CONFIG) from None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
