"""Binance spot klines as the ``http`` price source: bar close prices, with a shared circuit breaker.

Endpoint (Binance spot REST API, "Kline/Candlestick data"):
``GET {base}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=ms&endTime=ms&limit=1000``
answers a JSON array of klines ``[openTime, open, high, low, close, volume, closeTime,
...]`` (times in epoch ms, prices as decimal strings), at most ``limit`` of them with
``startTime <= openTime <= endTime``; errors are ``{"code": -1121, "msg": "Invalid
symbol."}`` with a 4xx status; 429 means "slow down" (``Retry-After`` in seconds) and
418 means the IP is banned (ditto).

- Symbols: ours minus ``/`` and ``-`` (``BTC/USDT`` and ``BTC-USDT`` -> ``BTCUSDT``).
- Bars: our interval's bars are aligned to multiples of the interval since the epoch.
  When Binance has no kline of that length (our default is 5 s) we fetch the largest
  Binance interval that divides it (``1s``) and take, per bar, the close of its last
  kline: exact, not an approximation, since a bar's close is its last kline's close.
  An interval that would take more than ``MAX_KLINES_PER_BAR`` klines per bar (one
  page; e.g. 1001 s or 3601 s, which only 1 s klines divide) is refused with
  ``UnsupportedInterval`` naming ``interval_s``: such bars cost a page of requests
  each, and a long fetch cut short by ``max_pages`` might complete none.
  Bars that have not ended by ``now`` are left out: an unfinished bar's close
  would change, and stored prices are append-only.
- Pages: 1000 klines per request, the next page starting after the last kline seen; at
  most ``max_pages`` per fetch, and then only the bars fully covered are returned (the
  price agent's next run fetches the rest).
- Failures: timeouts, connection errors and 5xx are retried (``retries`` times, with
  exponential backoff and jitter); a 429 waits for its ``Retry-After`` when that is at
  most ``max_retry_after_s``. What still fails is ``SourceUnavailable`` and a breaker
  failure; a ban (418), a 403 (Binance's firewall) or a 429 asking for a longer wait
  opens the breaker at once for as long as asked. Other 4xx (bad symbol) are
  ``SourceError``; they prove the API is up, so they count as a success.
- The breaker is ``agentsys.sources.breaker`` under the source name ``http`` (what
  ``GET /agents`` shows); while it is open no request is made.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis import Redis

from agentsys import defaults
from agentsys.errors import ConfigError
from agentsys.keys import Keys
from agentsys.sources import breaker
from agentsys.sources.errors import SourceError, SourceUnavailable

SOURCE = "http"
"""Breaker name of this source (the ``source`` column of ``symbols``)."""
KLINES_PATH = "/api/v3/klines"
PAGE_LIMIT = 1000
"""Klines per request (Binance's maximum)."""
INTERVALS = {86_400: "1d", 43_200: "12h", 28_800: "8h", 21_600: "6h", 14_400: "4h", 7_200: "2h", 3_600: "1h",
             1_800: "30m", 900: "15m", 300: "5m", 180: "3m", 60: "1m", 1: "1s"}
"""Binance kline intervals by length in seconds (3d, 1w and 1M are not aligned to the epoch)."""
MAX_KLINES_PER_BAR = PAGE_LIMIT
"""Most klines one of our bars may be built from (so one page always holds whole bars)."""


class HttpSourceSettings(BaseSettings):
    """Settings of the http source, from ``HTTP_SOURCE_*`` variables (``HTTP_SOURCE_URL`` ...)."""

    model_config = SettingsConfigDict(env_prefix="HTTP_SOURCE_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    url: str = Field(default=defaults.HTTP_SOURCE_URL, pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
                     description="base URL of the Binance API (tests point it at a local server)")
    connect_timeout_s: float = Field(default=defaults.HTTP_CONNECT_TIMEOUT_S, gt=0, le=60)
    read_timeout_s: float = Field(default=defaults.HTTP_READ_TIMEOUT_S, gt=0, le=300)
    retries: int = Field(default=defaults.HTTP_RETRIES, ge=0, le=10, description="retries of a request after a timeout, 5xx or 429")
    backoff_s: float = Field(default=defaults.HTTP_BACKOFF_S, ge=0, le=60, description="first retry delay; doubles, with jitter")
    backoff_cap_s: float = Field(default=defaults.HTTP_BACKOFF_CAP_S, ge=0, le=300)
    max_retry_after_s: float = Field(default=defaults.HTTP_MAX_RETRY_AFTER_S, ge=0, le=600,
                                     description="longest Retry-After waited for; longer opens the breaker")
    breaker_failures: int = Field(default=defaults.BREAKER_FAILURES, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=defaults.BREAKER_COOLDOWN_S, ge=0, le=86_400)
    max_pages: int = Field(default=defaults.HTTP_MAX_PAGES, ge=1, le=10_000, description="requests per fetch at most")


class UnsupportedInterval(SourceError):
    """Our interval cannot be built from whole Binance klines at a bounded cost (see the module doc)."""


class RateLimited(SourceUnavailable):
    """Binance told us to stop: a 429 we will not wait for, a 418 ban or a 403 firewall block."""

    def __init__(self, message: str, *, wait_s: float | None) -> None:
        super().__init__(message)
        self.wait_s = wait_s


def settings_from_env() -> HttpSourceSettings:
    """The settings, or ConfigError naming the bad variable (a job must not exit the process)."""
    try:
        return HttpSourceSettings()
    except ValidationError as error:
        bad = "; ".join(f"HTTP_SOURCE_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise ConfigError(bad) from None


def market_symbol(symbol: str) -> str:
    """Binance's name of one of our symbols: ``BTC/USDT`` -> ``BTCUSDT``."""
    return symbol.replace("/", "").replace("-", "")


def kline_interval(interval_s: int) -> tuple[str, int]:
    """The longest Binance interval dividing ours: (its name, its length in seconds).

    UnsupportedInterval when there is none, or it would take more than
    MAX_KLINES_PER_BAR klines per bar: a clear refusal, never other bars than asked for.
    """
    if interval_s >= 1:
        for length, name in INTERVALS.items():
            if interval_s % length == 0:
                if interval_s // length <= MAX_KLINES_PER_BAR:
                    return name, length
                break
    supported = ", ".join(INTERVALS[n] for n in sorted(INTERVALS))
    raise UnsupportedInterval(
        f"http source: interval_s={interval_s} is not supported: a bar must be a whole number of at most"
        f" {MAX_KLINES_PER_BAR} klines of one Binance interval ({supported}), e.g. 1000 s or 1020 s")


def open_client(settings: HttpSourceSettings) -> httpx.Client:
    """A client for many fetches (connection reuse); close it, or use it in a ``with``."""
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    return httpx.Client(base_url=settings.url, timeout=timeout, headers={"User-Agent": "agent-system"})


def fetch_closes(redis: Redis, keys: Keys, symbol: str, start_us: int, end_us: int, *,
                 interval_s: int = defaults.PRICE_INTERVAL_S, settings: HttpSourceSettings | None = None,
                 client: httpx.Client | None = None, now: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Close prices of the ended bars whose open time (epoch us) is in [start_us, end_us].

    Returns (bar open times, closes), sorted, possibly fewer bars than asked (gaps,
    unfinished bars). Raises SourceUnavailable (breaker open, or the API failed after
    retries) or SourceError (the API refused the request, e.g. an unknown symbol;
    UnsupportedInterval for an interval Binance's klines cannot build, before any request).
    """
    if interval_s < 1 or end_us < start_us:
        raise ValueError("interval_s must be at least 1 and end_us at least start_us")
    kline_interval(interval_s)  # refuse an unsupported interval before touching the breaker
    settings = settings or settings_from_env()
    now = time.time() if now is None else now
    if not breaker.allow(redis, keys, SOURCE, now=now):
        found = breaker.state(redis, keys, SOURCE)
        until = datetime.fromtimestamp(found["retry_at"] or now, UTC).isoformat(timespec="seconds")
        why = f"next try at {until}" if found["state"] == breaker.OPEN else "another worker's probe is in flight"
        raise SourceUnavailable(f"http source: circuit breaker {found['state']} after {found['failures']} failures"
                                f" ({why}); {symbol} not fetched")
    try:
        if client is None:
            with open_client(settings) as own:
                opens, closes, covered = _klines(own, settings, symbol, interval_s, start_us, end_us, sleep)
        else:
            opens, closes, covered = _klines(client, settings, symbol, interval_s, start_us, end_us, sleep)
    except RateLimited as error:
        wait = max(error.wait_s or 0.0, settings.breaker_cooldown_s)
        breaker.record_failure(redis, keys, SOURCE, now=now, threshold=settings.breaker_failures,
                               cooldown_s=wait, force=True)
        raise
    except SourceUnavailable:
        breaker.record_failure(redis, keys, SOURCE, now=now, threshold=settings.breaker_failures,
                               cooldown_s=settings.breaker_cooldown_s)
        raise
    except SourceError:
        breaker.record_success(redis, keys, SOURCE)
        raise
    breaker.record_success(redis, keys, SOURCE)
    return _bars(opens, closes, interval_s, start_us, end_us, min(int(now * 1_000_000), (covered + 1) * 1000))


def _bars(opens_ms: npt.NDArray[np.int64], closes: npt.NDArray[np.float64], interval_s: int, start_us: int,
          end_us: int, known_us: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Our bars from klines: the close of each bar's last kline, for bars that ended before known_us."""
    step = interval_s * 1_000_000
    bar = (opens_ms * 1000) // step * step
    keep = (bar >= start_us) & (bar <= end_us) & (bar + step <= known_us)
    order = np.argsort(opens_ms[keep], kind="stable")
    bar, closes = bar[keep][order], closes[keep][order]
    last = np.ones(len(bar), dtype=bool)
    last[:-1] = bar[1:] != bar[:-1]
    return bar[last], closes[last]


def _klines(client: httpx.Client, settings: HttpSourceSettings, symbol: str, interval_s: int, start_us: int,
            end_us: int, sleep: Callable[[float], None]
            ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """Klines (open ms, close) covering the bars in [start_us, end_us], page by page, and the ms
    up to which they are complete (less than asked when ``max_pages`` cut the fetch short)."""
    name, length = kline_interval(interval_s)
    cursor, end_ms = start_us // 1000, (end_us + interval_s * 1_000_000) // 1000 - 1
    opens: list[npt.NDArray[np.int64]] = []
    closes: list[npt.NDArray[np.float64]] = []
    for _ in range(settings.max_pages):
        params = {"symbol": market_symbol(symbol), "interval": name, "startTime": cursor, "endTime": end_ms,
                  "limit": PAGE_LIMIT}
        page_opens, page_closes = _parse(_get(client, settings, symbol, params, sleep), symbol)
        opens.append(page_opens)
        closes.append(page_closes)
        if len(page_opens) < PAGE_LIMIT or int(page_opens.max()) + length * 1000 > end_ms:
            cursor = end_ms + 1
            break
        cursor = int(page_opens.max()) + length * 1000
    return np.concatenate(opens), np.concatenate(closes), cursor - 1


def _get(client: httpx.Client, settings: HttpSourceSettings, symbol: str, params: dict[str, Any],
         sleep: Callable[[float], None]) -> Any:
    """One page's JSON, retrying what is worth retrying."""
    for attempt in range(settings.retries + 1):
        last = attempt == settings.retries
        try:
            response = client.get(KLINES_PATH, params=params)
        except httpx.TimeoutException as error:
            problem = f"timed out ({type(error).__name__})"
        except httpx.TransportError as error:
            problem = f"connection failed ({type(error).__name__}: {error})"
        else:
            status = response.status_code
            if status == 200:
                try:
                    return response.json()
                except ValueError:
                    raise SourceUnavailable(f"http source: {symbol}: the response is not JSON") from None
            wait = _retry_after(response)
            if status in (418, 403):
                why = "banned this IP (HTTP 418)" if status == 418 else "firewall refused us (HTTP 403)"
                raise RateLimited(f"http source: Binance {why}" + (f", retry after {wait:g}s" if wait else ""),
                                  wait_s=wait)
            if status == 429:
                pause = _backoff(settings, attempt) if wait is None else wait
                if last or pause > settings.max_retry_after_s:
                    raise RateLimited(f"http source: rate limited (HTTP 429, retry after {pause:g}s)", wait_s=pause)
                sleep(pause)
                continue
            if status < 500:
                raise SourceError(f"http source: {symbol} ({params['symbol']}): {_describe(response)}")
            problem = f"HTTP {status}: {_describe(response)}"
        if last:
            raise SourceUnavailable(f"http source: {symbol}: {problem}, after {attempt + 1} attempt(s)")
        sleep(_backoff(settings, attempt))
    raise AssertionError("the loop returns or raises")  # pragma: no cover


def _parse(data: Any, symbol: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(openTime ms, close) of a page of klines; SourceUnavailable when it is not one."""
    try:
        if not isinstance(data, list):
            raise TypeError("not a JSON array")
        opens = np.array([int(row[0]) for row in data], dtype=np.int64)
        closes = np.array([float(row[4]) for row in data], dtype=np.float64)
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise SourceUnavailable(f"http source: {symbol}: unexpected klines ({error})") from None
    if not (np.isfinite(closes) & (closes > 0)).all():
        raise SourceUnavailable(f"http source: {symbol}: a kline has a close price that is not above zero")
    return opens, closes


def _describe(response: httpx.Response) -> str:
    """Binance's error text: ``msg (code N)``, else the start of the body."""
    try:
        body = response.json()
        return f"{body['msg']} (code {body['code']}, HTTP {response.status_code})"
    except (ValueError, TypeError, KeyError):
        return f"HTTP {response.status_code}: {response.text[:200]!r}"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds asked for by ``Retry-After`` (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _backoff(settings: HttpSourceSettings, attempt: int) -> float:
    """Exponential backoff with jitter: a random delay in [d/2, d], d = backoff_s * 2**attempt (capped)."""
    delay = min(settings.backoff_cap_s, settings.backoff_s * 2**attempt)
    return random.uniform(delay / 2, delay)
