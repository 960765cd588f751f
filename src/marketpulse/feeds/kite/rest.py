"""The Kite Connect REST API: quotes, historical candles and the instrument master.

One :class:`KiteRestClient` wraps an ``httpx.AsyncClient`` with the two headers every call
needs (``Authorization: token api_key:access_token`` and ``X-Kite-Version: 3``) and with the
rules Kite enforces on callers, so callers never have to know them:

- per-endpoint rate limits (quotes 1 request/s, historical candles 3/s, everything else 10/s);
- per-request size limits (500 instruments for ``/quote``, 1000 for ``/quote/ohlc`` and
  ``/quote/ltp``; a maximum date span per candle interval), split into several requests;
- retries with exponential backoff on HTTP 429, 5xx and network failures;
- HTTP 403 (``TokenException``) as :class:`FeedAuthError` with the login hint, any other
  API error as :class:`KiteApiError` carrying Kite's own message.

Routes, parameters and response shapes follow the official Python client (kiteconnect 5.2.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import httpx
import msgspec

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAuthError, FeedConnectionError, FeedError
from marketpulse.feeds.http import RateLimiter
from marketpulse.feeds.kite.credentials import (
    LOGIN_HINT,
    KiteCredentials,
    load_session,
    optional_session,
)
from marketpulse.feeds.kite.wire import exchange_for
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import DepthLevel, Mode, Tick, price_change

T = TypeVar("T")

HISTORICAL_INTERVALS: Final[Mapping[str, int]] = {
    "minute": 60,
    "3minute": 100,
    "5minute": 100,
    "10minute": 100,
    "15minute": 200,
    "30minute": 200,
    "60minute": 400,
    "day": 2000,
}
"""Every candle interval Kite offers → the longest span (days) one request may cover."""

QUOTE_LIMITS: Final[Mapping[str, int]] = {"/quote": 500, "/quote/ohlc": 1000, "/quote/ltp": 1000}
"""Instruments per request of each quote endpoint."""

DEFAULT_RATES: Final[Mapping[str, float]] = {"quote": 1.0, "historical": 3.0, "default": 10.0}
"""Requests per second Kite allows per endpoint family."""

_WIRE_TIME: Final = "%Y-%m-%d %H:%M:%S"  # IST wall clock, as the API reads and writes it


class KiteApiError(FeedError):
    """Kite answered with an error other than an authentication failure."""

    def __init__(self, message: str, status: int, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


# --------------------------------------------------------------------------- response shapes


class QuoteOHLC(msgspec.Struct):
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0


class QuoteLevel(msgspec.Struct):
    price: float = 0.0
    quantity: int = 0
    orders: int = 0


class QuoteDepth(msgspec.Struct):
    buy: list[QuoteLevel] = msgspec.field(default_factory=list)
    sell: list[QuoteLevel] = msgspec.field(default_factory=list)


class KiteQuote(msgspec.Struct):
    """A ``/quote`` entry (full market quote)."""

    instrument_token: int
    last_price: float
    timestamp: str | None = None
    last_trade_time: str | None = None
    last_quantity: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    volume: int = 0
    average_price: float = 0.0
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    net_change: float = 0.0
    lower_circuit_limit: float = 0.0
    upper_circuit_limit: float = 0.0
    ohlc: QuoteOHLC = msgspec.field(default_factory=QuoteOHLC)
    depth: QuoteDepth | None = None

    def to_tick(self, ts_recv: int, symbol: str | None = None) -> Tick:
        """The canonical tick of this quote (mode ``full``; IST times → UTC epoch ms)."""
        close = self.ohlc.close or None
        change, change_pct = price_change(self.last_price, close)
        if change is not None:  # -4.6, not -4.599999999999909 (prices have at most 7 decimals)
            change = round(change, 7)
        depth = self.depth or QuoteDepth()
        return Tick(
            source="kite", token=str(self.instrument_token),
            exchange=exchange_for(self.instrument_token), mode=Mode.FULL.value,
            ltp=self.last_price, symbol=symbol, ltq=self.last_quantity,
            atp=self.average_price, volume=self.volume, total_buy_qty=self.buy_quantity,
            total_sell_qty=self.sell_quantity, open=self.ohlc.open, high=self.ohlc.high,
            low=self.ohlc.low, close=close, change=change, change_pct=change_pct, oi=self.oi,
            oi_day_high=self.oi_day_high, oi_day_low=self.oi_day_low,
            upper_circuit=self.upper_circuit_limit or None,
            lower_circuit=self.lower_circuit_limit or None,
            ts_exchange=ist_to_epoch_ms(self.timestamp),
            ts_last_trade=ist_to_epoch_ms(self.last_trade_time), ts_recv=ts_recv,
            bids=[DepthLevel(lv.price, lv.quantity, lv.orders) for lv in depth.buy if lv.quantity],
            asks=[DepthLevel(lv.price, lv.quantity, lv.orders) for lv in depth.sell if lv.quantity],
        )  # fmt: skip


class KiteOHLCQuote(msgspec.Struct):
    """A ``/quote/ohlc`` entry."""

    instrument_token: int
    last_price: float
    ohlc: QuoteOHLC = msgspec.field(default_factory=QuoteOHLC)


class KiteLTPQuote(msgspec.Struct):
    """A ``/quote/ltp`` entry."""

    instrument_token: int
    last_price: float


class HistoricalCandle(msgspec.Struct, frozen=True):
    """One candle; ``start`` is timezone-aware (IST, as Kite sends it)."""

    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int | None = None


class _Candles(msgspec.Struct):
    candles: list[list[Any]]


class _Envelope(msgspec.Struct):
    status: str = "error"
    message: str | None = None
    error_type: str | None = None


def ist_to_epoch_ms(text: str | None) -> int | None:
    """Kite's ``YYYY-MM-DD HH:MM:SS`` (IST wall clock) as UTC epoch ms; ``None`` if absent."""
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19].replace("T", " "), _WIRE_TIME).replace(tzinfo=IST)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1000


def to_ist(moment: datetime) -> datetime:
    """Aware datetimes converted to IST; naive ones are taken as IST (what Kite assumes)."""
    local = moment.replace(tzinfo=IST) if moment.tzinfo is None else moment.astimezone(IST)
    return local.replace(microsecond=0)


def historical_chunks(
    start: datetime, end: datetime, interval: str
) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` cut into consecutive IST ranges Kite accepts for ``interval``.

    Each range spans less than the interval's day limit and the next starts one second after
    the previous ends (the API's precision), so no candle is asked for twice.
    """
    days = HISTORICAL_INTERVALS.get(interval)
    if days is None:
        raise ValueError(
            f"unknown Kite candle interval {interval!r}; use one of "
            f"{', '.join(HISTORICAL_INTERVALS)}"
        )
    start, end = to_ist(start), to_ist(end)
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    span = timedelta(days=days) - timedelta(seconds=1)
    chunks: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor <= end:
        stop = min(cursor + span, end)
        chunks.append((cursor, stop))
        cursor = stop + timedelta(seconds=1)
    return chunks


def parse_candle(row: Sequence[Any]) -> HistoricalCandle:
    """``[timestamp, open, high, low, close, volume(, oi)]`` as Kite sends each candle; the
    timestamp is ISO 8601 with offset (``2024-01-15T09:15:00+0530``)."""
    return HistoricalCandle(
        datetime.fromisoformat(str(row[0])), float(row[1]), float(row[2]),
        float(row[3]), float(row[4]), int(row[5]), int(row[6]) if len(row) > 6 else None,
    )  # fmt: skip


# --------------------------------------------------------------------------- the client


_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class KiteRestClient:
    """An async Kite Connect REST session (``async with`` closes it)."""

    def __init__(
        self,
        api_url: str,
        credentials: KiteCredentials | None,
        *,
        timeout: float = 15.0,
        retries: int = 4,
        backoff: float = 0.5,
        rates: Mapping[str, float] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"X-Kite-Version": "3"}
        if credentials is not None:
            headers["Authorization"] = f"token {credentials.api_key}:{credentials.access_token}"
        self.api_url = api_url.rstrip("/")
        self.credentials = credentials
        self.retries = retries
        self.backoff = backoff
        self._limiters = {
            family: RateLimiter(rate) for family, rate in {**DEFAULT_RATES, **(rates or {})}.items()
        }
        self._client = httpx.AsyncClient(
            base_url=self.api_url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, require_session: bool = True, **options: Any
    ) -> KiteRestClient:
        """A client with the saved session; ``require_session=False`` for public endpoints."""
        home = settings.marketpulse_home
        credentials = load_session(home) if require_session else optional_session(home)
        return cls(settings.kite_api_url, credentials, **options)

    async def __aenter__(self) -> KiteRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ endpoints

    async def quote(self, instruments: Sequence[str]) -> dict[str, KiteQuote]:
        """Full quotes keyed by ``EXCHANGE:TRADINGSYMBOL``; unknown instruments are absent."""
        return await self._quotes("/quote", instruments, _QUOTE_DECODER)

    async def ohlc(self, instruments: Sequence[str]) -> dict[str, KiteOHLCQuote]:
        return await self._quotes("/quote/ohlc", instruments, _OHLC_DECODER)

    async def ltp(self, instruments: Sequence[str]) -> dict[str, KiteLTPQuote]:
        return await self._quotes("/quote/ltp", instruments, _LTP_DECODER)

    async def historical(
        self,
        instrument_token: int | str,
        interval: str,
        start: datetime,
        end: datetime,
        *,
        continuous: bool = False,
        oi: bool = False,
    ) -> list[HistoricalCandle]:
        """Candles of ``interval`` from ``start`` to ``end`` (naive = IST), however long the
        range: it is fetched in as many requests as the interval's span limit needs."""
        candles: dict[datetime, HistoricalCandle] = {}
        for chunk_start, chunk_end in historical_chunks(start, end, interval):
            params = {
                "from": chunk_start.strftime(_WIRE_TIME),
                "to": chunk_end.strftime(_WIRE_TIME),
                "continuous": int(continuous),
                "oi": int(oi),
            }
            path = f"/instruments/historical/{int(instrument_token)}/{interval}"
            reply = await self._request("historical", path, params)
            data = _decode(reply, _CANDLES_DECODER)
            for row in data.candles:
                try:
                    candle = parse_candle(row)
                except (ValueError, TypeError, IndexError) as exc:
                    raise KiteApiError(
                        f"kite: unreadable candle {row!r} from {path}: {exc}", reply.status
                    ) from exc
                candles[candle.start] = candle
        return [candles[k] for k in sorted(candles)]

    async def instruments(
        self, exchange: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> str:
        """The instrument dump (CSV text) of every exchange, or of one; ``progress(done,
        total)`` is called with bytes downloaded as it arrives (total 0 when unknown)."""
        path = "/instruments" + (f"/{exchange}" if exchange else "")
        reply = await self._request("default", path, None, progress=progress)
        return reply.content.decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ plumbing

    async def _quotes(
        self, path: str, instruments: Sequence[str], decoder: msgspec.json.Decoder[dict[str, T]]
    ) -> dict[str, T]:
        wanted = list(dict.fromkeys(instruments))
        limit = QUOTE_LIMITS[path]
        result: dict[str, T] = {}
        for start in range(0, len(wanted), limit):
            reply = await self._request("quote", path, {"i": wanted[start : start + limit]})
            chunk: dict[str, T] = _decode(reply, decoder)
            result.update(chunk)
        return result

    async def _request(
        self,
        family: str,
        path: str,
        params: Mapping[str, Any] | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> _Reply:
        """GET with rate limiting and retries; returns a successful reply's body."""
        limiter = self._limiters.get(family) or self._limiters["default"]
        attempt = 0
        while True:
            await limiter.acquire()
            try:
                async with self._client.stream("GET", path, params=params) as response:
                    status = response.status_code
                    if status == 200 and progress is not None:
                        total = int(response.headers.get("content-length") or 0)
                        parts = []
                        async for part in response.aiter_bytes():
                            parts.append(part)
                            progress(response.num_bytes_downloaded, total)
                        content = b"".join(parts)
                    else:
                        content = await response.aread()
                    retry_after = _retry_after(response.headers.get("retry-after"))
                    reason = response.reason_phrase
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise FeedConnectionError(
                        f"kite: cannot reach {self.api_url}{path}: {exc!r}"
                    ) from exc
                await asyncio.sleep(self.backoff * 2**attempt)
                attempt += 1
                continue
            if status == 200:
                return _Reply(path, status, content)
            if status in _RETRY_STATUSES and attempt < self.retries:
                await asyncio.sleep(retry_after or self.backoff * 2**attempt)
                attempt += 1
                continue
            raise _error(_Reply(path, status, content), reason)


@dataclass(frozen=True, slots=True)
class _Reply:
    path: str
    status: int
    content: bytes


def _retry_after(value: str | None) -> float | None:
    try:
        return min(30.0, float(value)) if value else None
    except ValueError:
        return None


def _error(reply: _Reply, reason: str) -> FeedError:
    status = reply.status
    try:
        body = msgspec.json.decode(reply.content, type=_Envelope)
        message, error_type = body.message or reason, body.error_type
    except (msgspec.DecodeError, msgspec.ValidationError):
        message, error_type = reply.content.decode(errors="replace").strip()[:200] or reason, None
    if status in (401, 403) or error_type == "TokenException":
        return FeedAuthError(
            f"kite: {reply.path} was refused (HTTP {status}, {error_type or 'no error type'}: "
            f"{message}); the access token has expired (06:00 IST daily) or the api_key is "
            f"wrong: run `{LOGIN_HINT}`"
        )
    return KiteApiError(
        f"kite: {reply.path} failed with HTTP {status} ({error_type or 'error'}): {message}",
        status,
        error_type,
    )


class _Success(msgspec.Struct):
    status: str
    data: msgspec.Raw


def _decode(reply: _Reply, decoder: msgspec.json.Decoder[T]) -> T:
    """The ``data`` member of a success envelope, typed by ``decoder``."""
    try:
        return decoder.decode(_SUCCESS_DECODER.decode(reply.content).data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise KiteApiError(
            f"kite: unexpected response from {reply.path}: {exc}", reply.status
        ) from exc


_SUCCESS_DECODER: Final = msgspec.json.Decoder(_Success)
_QUOTE_DECODER: Final = msgspec.json.Decoder(dict[str, KiteQuote], strict=False)
_OHLC_DECODER: Final = msgspec.json.Decoder(dict[str, KiteOHLCQuote], strict=False)
_LTP_DECODER: Final = msgspec.json.Decoder(dict[str, KiteLTPQuote], strict=False)
_CANDLES_DECODER: Final = msgspec.json.Decoder(_Candles, strict=False)
