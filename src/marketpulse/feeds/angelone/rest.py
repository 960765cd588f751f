"""Angel One SmartAPI over HTTP: the headers, the response envelope, limits and retries.

Every endpoint answers ``{"status", "message", "errorcode", "data"}`` (token failures use
``{"success", "message", "errorCode"}`` instead). This module turns those answers into one of:

- the ``data`` payload;
- :class:`SessionRejectedError` (a ``FeedAuthError``) for a rejected or expired session
  (HTTP 401/403,
  ``AG8001``/``AG8002``/``AG8003``/``AB1010``, bad refresh token) — retrying cannot help, the
  message says to log in again;
- :class:`SmartApiError` for any other refusal (bad request, unknown token, wrong PIN, ...);
- a retry, with exponential backoff and jitter, for rate limiting (HTTP 429, or the API's
  "exceeding access rate" answer), HTTP 5xx and network errors.

Requests are also paced per endpoint family by :class:`RateLimiter` so that a long history
backfill stays under the documented limits instead of living on retries. The JSON mapping of
quotes and candles is in :mod:`.market_data`, the instrument master's in :mod:`.master`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import httpx

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.feeds.angelone import market_data
from marketpulse.feeds.angelone.market_data import Interval, Unfetched
from marketpulse.feeds.angelone.session import LOGIN_HINT, AngelOneSession, load_session
from marketpulse.feeds.base import FeedAuthError, FeedError
from marketpulse.feeds.http import RateLimiter
from marketpulse.model import Candle, Mode, Tick

log = logging.getLogger(__name__)

LOGIN_PATH: Final = "/rest/auth/angelbroking/user/v1/loginByPassword"
REFRESH_PATH: Final = "/rest/auth/angelbroking/jwt/v1/generateTokens"
LOGOUT_PATH: Final = "/rest/secure/angelbroking/user/v1/logout"
PROFILE_PATH: Final = "/rest/secure/angelbroking/user/v1/getProfile"
QUOTE_PATH: Final = "/rest/secure/angelbroking/market/v1/quote/"
CANDLE_PATH: Final = "/rest/secure/angelbroking/historical/v1/getCandleData"

AUTH_ERROR_CODES: Final = frozenset({"AG8001", "AG8002", "AG8003", "AB1010", "AB8050", "AB8051"})
"""Invalid / expired / missing token, session expired, invalid / expired refresh token."""

_RATE_LIMIT_TEXT: Final = ("exceeding access rate", "too many requests", "rate limit")


class SmartApiError(FeedError):
    """SmartAPI refused a request; ``errorcode`` is its code (e.g. ``AB1007``) when it gave one."""

    def __init__(self, message: str, errorcode: str = "", status: int = 200) -> None:
        super().__init__(message)
        self.errorcode = errorcode
        self.status = status


class SessionRejectedError(FeedAuthError):
    """The API refused the session (or the refresh token); ``errorcode`` as for SmartApiError."""

    def __init__(self, message: str, errorcode: str = "") -> None:
        super().__init__(message)
        self.errorcode = errorcode


class RateLimitedError(SmartApiError):
    """Too many requests; retried with backoff until the attempts run out."""


class ServerError(SmartApiError):
    """HTTP 5xx; retried."""


# --------------------------------------------------------------------------- pacing and retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for transient failures: ``base × 2^attempt`` capped, with full jitter."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per second by endpoint family (SmartAPI documents 10/s with 500/min for quotes
    and 3/s with ~150/min for history; the defaults stay under the per-minute figures)."""

    quote_per_second: float = 8.0
    history_per_second: float = 2.0
    auth_per_second: float = 1.0


def _mac_address() -> str:
    node = uuid.getnode()
    return ":".join(f"{(node >> shift) & 0xFF:02x}" for shift in range(40, -8, -8))


# --------------------------------------------------------------------------- the client


class SmartApiClient:
    """One SmartAPI REST session (``jwt`` None before login).

    Owns an ``httpx.AsyncClient`` unless one is passed in; use it as an async context manager
    or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        jwt: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.jwt = jwt
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self.retry = retry or RetryPolicy()
        limits = limits or Limits()
        self._limiters = {
            "quote": RateLimiter(limits.quote_per_second),
            "history": RateLimiter(limits.history_per_second),
            "auth": RateLimiter(limits.auth_per_second),
        }
        self._rng = rng or random.Random()
        self.requests = 0
        self.retries = 0

    @classmethod
    def from_session(cls, base_url: str, session: AngelOneSession, **kwargs: Any) -> SmartApiClient:
        return cls(base_url, session.api_key, jwt=session.jwt_token, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SmartApiClient:
        """A client with the saved session (``CredentialsError`` with the login hint if none)."""
        session = load_session(CredentialStore.in_home(settings.marketpulse_home))
        return cls.from_session(settings.angelone_api_url, session, **kwargs)

    async def __aenter__(self) -> SmartApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def headers(self) -> dict[str, str]:
        """The headers every SmartAPI request carries (spec §1.1)."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-UserType": "USER",
            "X-SourceID": "WEB",
            "X-ClientLocalIP": "127.0.0.1",
            "X-ClientPublicIP": "127.0.0.1",
            "X-MACAddress": _MAC_ADDRESS,
            "X-PrivateKey": self.api_key,
        }
        if self.jwt:
            headers["Authorization"] = f"Bearer {self.jwt}"
        return headers

    async def post(self, path: str, body: Mapping[str, Any], *, family: str = "auth") -> Any:
        """POST ``body`` and return the envelope's ``data``, retrying transient failures."""
        return await self._call("POST", path, body, family)

    async def get(self, path: str, *, family: str = "auth") -> Any:
        return await self._call("GET", path, None, family)

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None, family: str
    ) -> Any:
        limiter = self._limiters[family]
        attempt = 0
        while True:
            await limiter.acquire()
            self.requests += 1
            try:
                response = await self._http.request(
                    method, self.base_url + path, json=body, headers=self.headers()
                )
                return read_envelope(response, path)
            except (RateLimitedError, ServerError, httpx.TransportError) as exc:
                if attempt + 1 >= self.retry.attempts:
                    if isinstance(exc, httpx.TransportError):
                        raise SmartApiError(
                            f"{path}: {exc!r} (gave up after {attempt + 1} attempts)", "", 0
                        ) from exc
                    raise
                delay = self.retry.delay(attempt, self._rng)
                log.warning("angelone %s: %s; retrying in %.2fs", path, exc, delay)
                self.retries += 1
                attempt += 1
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ market data

    async def quotes(
        self, instruments: Sequence[tuple[str, str]], mode: Mode = Mode.FULL
    ) -> tuple[list[Tick], list[Unfetched]]:
        """Snapshots of ``(canonical exchange, token)`` pairs, 50 per request (the API's cap)."""
        ticks: list[Tick] = []
        missing: list[Unfetched] = []
        step = market_data.MAX_QUOTE_TOKENS
        for start in range(0, len(instruments), step):
            chunk = instruments[start : start + step]
            data = await self.post(QUOTE_PATH, market_data.quote_body(mode, chunk), family="quote")
            got, lost = market_data.parse_quotes(data, Mode(mode), chunk, time.time_ns())
            ticks += got
            missing += lost
        return ticks, missing

    async def candles(
        self,
        exchange: str,
        token: str,
        interval: Interval | str,
        start: datetime,
        end: datetime,
        *,
        symbol: str | None = None,
    ) -> list[Candle]:
        """Candles in ``[start, end]``, fetched in windows the interval's limit allows."""
        chosen = interval if isinstance(interval, Interval) else Interval.parse(interval)
        name = symbol or f"angelone:{token}"
        batches = []
        for window_start, window_end in market_data.plan_chunks(start, end, chosen):
            body = market_data.candle_body(exchange, token, chosen, window_start, window_end)
            data = await self.post(CANDLE_PATH, body, family="history")
            batches.append(market_data.parse_candles(data, name, chosen))
        return market_data.merge_candles(batches)


_MAC_ADDRESS: Final = _mac_address()


def read_envelope(response: httpx.Response, path: str) -> Any:
    """The ``data`` of a SmartAPI answer, or the matching exception (see module docstring)."""
    status = response.status_code
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        text = response.text.strip()[:200]
        if status == 429 or _rate_limited(text):
            raise RateLimitedError(f"{path}: rate limited (HTTP {status}: {text})", "", status)
        if status in (401, 403):
            raise SessionRejectedError(_auth_message(f"HTTP {status}: {text}"))
        if status >= 500:
            raise ServerError(f"{path}: HTTP {status}: {text}", "", status)
        raise SmartApiError(f"{path}: unexpected answer (HTTP {status}): {text!r}", "", status)
    message = str(payload.get("message") or "")
    code = str(payload.get("errorcode") or payload.get("errorCode") or "")
    ok = payload.get("status", payload.get("success"))
    if status == 429 or _rate_limited(message):
        raise RateLimitedError(f"{path}: rate limited: {message or status}", code, status)
    if status >= 500:
        raise ServerError(f"{path}: HTTP {status}: {message}", code, status)
    if code in AUTH_ERROR_CODES or status in (401, 403):
        detail = f"{message or 'rejected'} ({code or f'HTTP {status}'})"
        raise SessionRejectedError(_auth_message(detail), code)
    if ok is True or ok == "true":
        return payload.get("data")
    raise SmartApiError(f"{path}: {message or 'request refused'}" + (f" ({code})" if code else ""),
                        code, status)  # fmt: skip


def _rate_limited(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _RATE_LIMIT_TEXT)


def _auth_message(detail: str) -> str:
    return f"angelone: the session was rejected: {detail}; run `{LOGIN_HINT}`"
