"""ISO 8601 text for UTC instants: the one way every part of the system writes a time.

Microsecond timestamps (``ts_us``, how prices travel as numpy arrays) convert exactly,
through integer ``timedelta`` arithmetic, never through a float of seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The Unix epoch, UTC."""
ONE_US = timedelta(microseconds=1)


def us_of(when: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly (integer ``timedelta`` arithmetic)."""
    return (when - EPOCH) // ONE_US


def iso(when: datetime, *, z: bool = False) -> str:
    """``when`` as ISO 8601; ``z`` writes UTC as ``Z`` instead of ``+00:00`` (CSV and agentctl's style)."""
    text = when.isoformat()
    return text.replace("+00:00", "Z") if z else text


def iso_s(seconds: float) -> str:
    """Epoch seconds as ISO 8601 UTC."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def iso_us(ts_us: int, *, z: bool = False) -> str:
    """Epoch microseconds as ISO 8601 UTC, exactly."""
    return iso(EPOCH + timedelta(microseconds=int(ts_us)), z=z)


def iso_us_many(ts_us: Any) -> list[str]:
    """A numpy array of epoch microseconds as ISO 8601 UTC texts, vectorised (for COPY)."""
    return [t + "+00:00" for t in ts_us.astype("datetime64[us]").astype(str).tolist()]
