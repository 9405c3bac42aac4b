"""Bearer-token checks, used as decorator dependencies (``dependencies=[Write]``).

Writes need ``Authorization: Bearer $API_TOKEN``; reads too when
``API_READ_TOKEN_REQUIRED=true``. Without a token (allowed only on a loopback bind, see
the settings) the API serves reads and refuses every write: closed by default, since any
local user could otherwise drive it (``make run`` generates a token on first run). The
token is compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.deps import SettingsDep

bearer = HTTPBearer(auto_error=False, description="API_TOKEN of the orchestrator")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="missing or invalid bearer token",
    headers={"WWW-Authenticate": "Bearer"},
)


def _check(credentials: HTTPAuthorizationCredentials | None, expected: str) -> None:
    given = credentials.credentials.encode() if credentials is not None else b""
    # compare even when nothing was given, so timing says nothing about the token
    if not hmac.compare_digest(given, expected.encode()) or credentials is None:
        raise UNAUTHORIZED


NO_TOKEN = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="writes are disabled: the orchestrator has no API_TOKEN configured",
    headers={"WWW-Authenticate": "Bearer"},
)


async def require_write(settings: SettingsDep, credentials: Credentials) -> None:
    """Every mutating route: the bearer token; none configured means no writes at all."""
    if settings.api_token is None:
        raise NO_TOKEN
    _check(credentials, settings.api_token.get_secret_value())


async def require_read(settings: SettingsDep, credentials: Credentials) -> None:
    """Read routes: the bearer token only when API_READ_TOKEN_REQUIRED is set."""
    if settings.api_read_token_required and settings.api_token is not None:
        _check(credentials, settings.api_token.get_secret_value())


Write = Depends(require_write)
Read = Depends(require_read)
