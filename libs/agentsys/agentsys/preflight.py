"""Start-up probes of Redis and PostgreSQL: a refused credential stops a service at once.

Production services must survive their dependencies starting later (a whole stack
restarting, PostgreSQL still recovering): a server that is merely *unreachable*
(connection refused, timeout) does not stop a service here; the APIs start, say "not
ready" on ``/readyz`` and reconnect later. A server that answers and *refuses* the
credentials will refuse them on every retry, so waiting would only hide a typo: the
process prints one line to stderr naming the service and the variable (never the secret;
a URL shown has its password stripped) and exits with ``RET_AUTH`` (:mod:`agentsys.exitcodes`).

The classification is by exception class and by the servers' messages (PostgreSQL's in
English, its default ``lc_messages``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from redis import Redis
from redis import exceptions as redis_errors
from redis.backoff import NoBackoff
from redis.retry import Retry

from agentsys import db, defaults, errors
from agentsys.exitcodes import RET_AUTH
from agentsys.settings import CommonSettings

Outcome = Literal["ok", "refused", "unreachable"]

REDIS_REFUSALS = (redis_errors.AuthenticationError, redis_errors.AuthorizationError,
                  redis_errors.AuthenticationWrongNumberOfArgsError, redis_errors.NoPermissionError)
_REDIS_REFUSED = re.compile(r"WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username-password", re.IGNORECASE)
_PG_REFUSED = re.compile(r"authentication failed|no password supplied|(role|database) \".*\" does not exist"
                         r"|pg_hba\.conf|permission denied for database", re.IGNORECASE)
_PG_REFUSED_STATES = frozenset({"28000", "28P01", "3D000", "42501"})


@dataclass(frozen=True)
class Probe:
    """What one server said to the credentials of one variable."""

    variable: str
    server: str
    url: str
    """The URL probed, its password stripped."""
    outcome: Outcome
    detail: str = ""
    """The error's first line; empty when ``ok``."""

    def line(self, service: str) -> str:
        verb = "refused the credentials" if self.outcome == "refused" else "is unreachable"
        return f"{service}: {self.variable}: {self.server} at {self.url} {verb} ({self.detail})"


def redact(url: str) -> str:
    """``url`` without its password (in the authority or a ``password=`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hostport = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}@{hostport}" if name else hostport
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _password(url: str) -> str | None:
    parts = urlsplit(url)
    found = [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
    return unquote(parts.password) if parts.password else (found[0] if found else None)


def first_line(error: BaseException, url: str = "") -> str:
    """The error's first non-empty line, whitespace collapsed, ``url``'s password masked."""
    text = " ".join(errors.first_line(error).split())
    secret = _password(url) if url else None
    return text.replace(secret, "***") if secret else text


def redis_refused(error: BaseException) -> bool:
    """True when Redis answered and refused the credentials (not when it was unreachable)."""
    return isinstance(error, REDIS_REFUSALS) or (isinstance(error, redis_errors.ResponseError)
                                                 and bool(_REDIS_REFUSED.search(str(error))))


def postgres_refused(error: BaseException) -> bool:
    """True when PostgreSQL answered and refused the user, password or database."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    return getattr(error, "sqlstate", None) in _PG_REFUSED_STATES or bool(_PG_REFUSED.search(str(error)))


def probe_redis(url: str, variable: str = "REDIS_URL") -> Probe:
    """PING once, with a deadline and no retries."""
    client = Redis.from_url(url, socket_connect_timeout=defaults.CONNECT_TIMEOUT,
                            socket_timeout=defaults.CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except (redis_errors.RedisError, OSError) as error:
        outcome: Outcome = "refused" if redis_refused(error) else "unreachable"
        return Probe(variable, "Redis", redact(url), outcome, first_line(error, url))
    finally:
        client.close()
    return Probe(variable, "Redis", redact(url), "ok")


def probe_postgres(url: str, variable: str = "DATABASE_URL") -> Probe:
    """Open and close one connection, with the services' own connection settings."""
    try:
        db.connect(url).close()
    except (psycopg.Error, OSError) as error:
        outcome: Outcome = "refused" if postgres_refused(error) else "unreachable"
        return Probe(variable, "PostgreSQL", redact(url), outcome, first_line(error, url))
    return Probe(variable, "PostgreSQL", redact(url), "ok")


def _variable(settings: CommonSettings, field: str) -> str:
    return f"{settings.model_config.get('env_prefix') or ''}{field}".upper()


def check_credentials(service: str, settings: CommonSettings, *, log: Any = None) -> tuple[Probe, Probe]:
    """Probe Redis, then PostgreSQL; at the first refusal print one line and exit
    :data:`~agentsys.exitcodes.RET_AUTH`. Otherwise return both probes (an unreachable one is logged
    as a warning when ``log`` is given: the caller starts anyway)."""
    probes: list[Probe] = []
    for probe_one, field, url in ((probe_redis, "redis_url", settings.redis),
                                  (probe_postgres, "database_url", settings.database)):
        probe = probe_one(url, _variable(settings, field))
        if probe.outcome == "refused":
            print(probe.line(service), file=sys.stderr, flush=True)
            raise SystemExit(RET_AUTH)
        probes.append(probe)
    if log is not None:
        for probe in probes:
            if probe.outcome == "unreachable":
                log.warning(f"{probe.server} unreachable at start; starting anyway (not ready until it answers)",
                            variable=probe.variable, url=probe.url, error=probe.detail)
    return probes[0], probes[1]
