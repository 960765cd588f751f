"""The Fyers API v3 REST calls the feed needs: symbol → fyToken, quotes, history, masters.

One :class:`FyersRestClient` wraps an ``httpx.AsyncClient`` and knows Fyers' rules so callers do
not have to:

- ``POST /data/symbol-token`` takes at most 500 symbols per call and wants the *bare* JWT in
  ``Authorization`` (the SDK strips the ``APP_ID:`` prefix there); every other data call wants
  ``APP_ID:ACCESS_TOKEN``;
- ``GET /data/quotes`` takes at most 50 symbols per call; ``GET /data/history`` at most 100 days
  of intraday candles or 366 days of daily ones per call;
- HTTP 429/5xx and network failures are retried with backoff; HTTP 401/403 and Fyers' token
  error codes become :class:`FeedAuthError` with the login hint; any other ``"s": "error"``
  reply is a :class:`FyersApiError` carrying Fyers' message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx
import msgspec

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAuthError, FeedConnectionError, FeedError
from marketpulse.feeds.fyers.credentials import LOGIN_HINT, FyersCredentials, load_session
from marketpulse.feeds.http import RateLimiter
from marketpulse.model import DepthLevel, Mode, Tick, price_change

SYMBOL_TOKEN_BATCH: Final = 500
QUOTES_BATCH: Final = 50
HISTORY_DAYS: Final[Mapping[str, int]] = {"1": 100, "5": 100, "15": 100, "60": 100, "D": 366}
"""Fyers resolution → the longest span (days) one history request may cover."""
RESOLUTIONS: Final[Mapping[str, str]] = {"1m": "1", "5m": "5", "15m": "15", "1h": "60", "1d": "D"}
"""Canonical candle interval → Fyers ``resolution``."""
TOKEN_ERROR_CODES: Final = frozenset({-8, -15, -16, -17})
"""Fyers' "token expired / invalid" error codes."""
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class FyersApiError(FeedError):
    """Fyers answered with an error that is not about the credentials."""

    def __init__(self, message: str, status: int = 200, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SymbolTokens(msgspec.Struct):
    s: str = "error"
    message: str = ""
    validSymbol: dict[str, str] = msgspec.field(default_factory=dict)
    invalidSymbol: list[str] = msgspec.field(default_factory=list)


class QuoteValues(msgspec.Struct, omit_defaults=True):
    lp: float = 0.0
    ch: float = 0.0
    chp: float = 0.0
    open_price: float = 0.0
    high_price: float = 0.0
    low_price: float = 0.0
    prev_close_price: float = 0.0
    volume: int = 0
    atp: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    spread: float = 0.0
    tt: int | None = None
    short_name: str = ""
    exchange: str = ""
    description: str = ""
    original_name: str = ""
    symbol: str = ""
    fyToken: str = ""
    errmsg: str | None = None


class Quote(msgspec.Struct):
    n: str
    s: str = "ok"
    v: QuoteValues = msgspec.field(default_factory=QuoteValues)


class _Quotes(msgspec.Struct):
    s: str = "error"
    message: str = ""
    code: int | None = None
    d: list[Quote] = msgspec.field(default_factory=list)


class _History(msgspec.Struct):
    s: str = "error"
    message: str = ""
    code: int | None = None
    candles: list[list[float]] = msgspec.field(default_factory=list)


class _Error(msgspec.Struct):
    s: str = "error"
    message: str = ""
    code: int | None = None


def quote_tick(quote: Quote, exchange: str, ts_recv: int, symbol: str | None = None) -> Tick:
    """A REST quote as a ``quote``-mode tick (best bid/ask as one level each)."""
    v = quote.v
    close = v.prev_close_price or None
    change, change_pct = price_change(v.lp, close)
    return Tick(
        source="fyers", token=quote.n, exchange=exchange, mode=Mode.QUOTE.value, ltp=v.lp,
        symbol=symbol, atp=v.atp or None, volume=v.volume, open=v.open_price or None,
        high=v.high_price or None, low=v.low_price or None, close=close, change=change,
        change_pct=change_pct, ts_exchange=v.tt * 1000 if v.tt else None, ts_recv=ts_recv,
        bids=[DepthLevel(v.bid, 0)] if v.bid else None,
        asks=[DepthLevel(v.ask, 0)] if v.ask else None,
    )  # fmt: skip


def history_chunks(start: datetime, end: datetime, resolution: str) -> list[tuple[int, int]]:
    """``[start, end)`` as epoch-second ranges ``[from, to]`` (inclusive, as Fyers reads them)
    no longer than the resolution allows; consecutive ranges do not overlap."""
    days = HISTORY_DAYS.get(resolution)
    if days is None:
        raise ValueError(
            f"unknown Fyers resolution {resolution!r}; use one of {list(HISTORY_DAYS)}"
        )
    first, stop = int(start.timestamp()), int(end.timestamp()) - 1
    span = days * 86400
    out = []
    while first <= stop:
        last = min(first + span - 1, stop)
        out.append((first, last))
        first = last + 1
    return out


class FyersRestClient:
    """Fyers data REST with the session's headers, retries and batching (module docstring)."""

    def __init__(
        self,
        api_url: str,
        credentials: FyersCredentials | None,
        *,
        public_url: str | None = None,
        timeout: float = 15.0,
        retries: int = 3,
        rate: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.public_url = (public_url or api_url).rstrip("/")
        self.credentials = credentials
        self.retries = retries
        self._limiter = RateLimiter(rate)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, *, require_session: bool = True) -> FyersRestClient:
        credentials = load_session(settings.marketpulse_home) if require_session else None
        return cls(settings.fyers_api_url, credentials, public_url=settings.fyers_public_url)

    async def __aenter__(self) -> FyersRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _session(self) -> FyersCredentials:
        if self.credentials is None:
            raise FeedAuthError(f"fyers: no session; run `{LOGIN_HINT}`")
        return self.credentials

    # ------------------------------------------------------------------ calls

    async def symbol_tokens(self, symbols: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """``symbol → fyToken`` for the symbols Fyers knows, and the ones it does not."""
        session = self._session()
        jwt = session.access_token.partition(":")[2] or session.access_token
        valid: dict[str, str] = {}
        invalid: list[str] = []
        for i in range(0, len(symbols), SYMBOL_TOKEN_BATCH):
            batch = list(symbols[i : i + SYMBOL_TOKEN_BATCH])
            body = await self._request(
                "POST", f"{self.api_url}/data/symbol-token", headers={"Authorization": jwt},
                json={"symbols": batch},
            )  # fmt: skip
            reply = msgspec.json.decode(body, type=SymbolTokens)
            if reply.s != "ok":
                raise FyersApiError(f"fyers: symbol-token lookup failed: {reply.message}")
            valid.update(reply.validSymbol)
            invalid += reply.invalidSymbol
        return valid, invalid

    async def index_mapping(self) -> dict[str, str]:
        """Fyers' published ``symbol → HSM index name`` table (public, no session)."""
        body = await self._request("GET", f"{self.public_url}/sym_details/index_hsm_mapping.json")
        return msgspec.json.decode(body, type=dict[str, str])

    async def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        """``/data/quotes`` in batches of 50; symbols Fyers rejects come back with ``s`` set."""
        out: list[Quote] = []
        for i in range(0, len(symbols), QUOTES_BATCH):
            batch = ",".join(symbols[i : i + QUOTES_BATCH])
            body = await self._request(
                "GET", f"{self.api_url}/data/quotes", params={"symbols": batch}, auth=True
            )
            reply = msgspec.json.decode(body, type=_Quotes)
            if reply.s != "ok":
                raise _api_error(reply.message, 200, reply.code)
            out += reply.d
        return out

    async def history(
        self, symbol: str, resolution: str, first: int, last: int
    ) -> list[list[float]]:
        """Candles ``[epoch s, open, high, low, close, volume]`` with times in ``[first, last]``."""
        params = {"symbol": symbol, "resolution": resolution, "date_format": "0",
                  "range_from": str(first), "range_to": str(last), "cont_flag": "1"}  # fmt: skip
        body = await self._request("GET", f"{self.api_url}/data/history", params=params, auth=True)
        reply = msgspec.json.decode(body, type=_History)
        if reply.s == "no_data":
            return []
        if reply.s != "ok":
            raise _api_error(f"history of {symbol}: {reply.message}", 200, reply.code)
        return reply.candles

    async def _request(
        self,
        method: str,
        url: str,
        *,
        auth: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> bytes:
        all_headers = dict(headers or {})
        if auth:
            all_headers["Authorization"] = self._session().authorization
        attempt = 0
        while True:
            await self._limiter.acquire()
            try:
                response = await self._http.request(method, url, headers=all_headers, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise FeedConnectionError(f"fyers: cannot reach {url}: {exc!r}") from exc
            else:
                status = response.status_code
                if status == 200:
                    return response.content
                if status not in _RETRY_STATUSES or attempt >= self.retries:
                    raise _http_error(response)
            attempt += 1
            await asyncio.sleep(min(4.0, 0.2 * 2**attempt))


def _api_error(message: str, status: int, code: int | None) -> FeedError:
    if status in (401, 403) or code in TOKEN_ERROR_CODES:
        return FeedAuthError(
            f"fyers: the API refused the access token ({message or f'HTTP {status}'}); it has "
            f"expired (Fyers tokens last one day) or belongs to another app: run `{LOGIN_HINT}`"
        )
    return FyersApiError(f"fyers: {message or f'HTTP {status}'}", status, code)


def _http_error(response: httpx.Response) -> FeedError:
    try:
        reply = msgspec.json.decode(response.content, type=_Error)
        message, code = reply.message, reply.code
    except (msgspec.DecodeError, msgspec.ValidationError):
        message, code = response.text.strip()[:200], None
    return _api_error(f"HTTP {response.status_code}: {message}", response.status_code, code)
