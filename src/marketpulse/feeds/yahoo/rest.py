"""Yahoo's v8 chart API: candle history (with dividends, splits and adjusted close) and quotes.

``GET {YAHOO_CHART_URL}/{symbol}`` with ``period1``/``period2`` (epoch seconds) or ``range``,
``interval``, ``includePrePost`` and ``events`` answers ``{"chart": {"result": [...], "error":
…}}`` (spec §B1–B2). The API is unofficial and needs no login; what it may need is a *crumb*
(spec §B3): the client visits ``YAHOO_COOKIE_URL`` once for Yahoo's cookie (failures tolerated),
reads the crumb from ``YAHOO_CRUMB_URL`` (a 429 there is tolerated: requests go without) and adds
``crumb=…`` to every request. A 401/403 fetches a fresh cookie and crumb and repeats the request
once. Requests are paced by the shared :class:`~marketpulse.feeds.http.RateLimiter`
(``YAHOO_RATE_LIMIT_PER_SECOND``, one pacer per process); 429 and 5xx are retried with backoff,
then raised as :class:`~marketpulse.feeds.quotes.QuoteRateLimitedError` /
:class:`~marketpulse.feeds.quotes.QuoteProviderDownError`; other 4xx are
:class:`YahooChartError` with Yahoo's own description.

Yahoo has no quote endpoint that works without more cookies, so a quote is the chart's ``meta``
(``regularMarketPrice``, day high/low/volume, previous close, 52-week range, market time) of a
``range=1d&interval=1d`` request, plus the day bar's open.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from time import monotonic
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msgspec

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedError
from marketpulse.feeds.http import RateLimiter
from marketpulse.feeds.quotes import QuoteProviderDownError, QuoteRateLimitedError
from marketpulse.model import Candle, Tick, price_change
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

INTERVALS: Final[dict[str, str]] = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "60m", "1d": "1d"}
"""Canonical interval → Yahoo's ``interval`` parameter."""
WINDOW_DAYS: Final[dict[str, int]] = {"1m": 7, "5m": 30, "15m": 30, "1h": 365, "1d": 3650}
"""Days per request: Yahoo serves at most 8 days of 1m bars per request (spec §B1)."""
LOOKBACK_HINT: Final = (
    "Yahoo keeps 1m bars for about 30 days, 2m–90m bars for 60 days and 1h bars for 730 days"
)
EVENTS: Final = "div,splits,capitalGains"
USER_AGENT: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class YahooChartError(FeedError):
    """The chart API refused a request (unknown symbol, invalid range or interval, …); the
    message has Yahoo's description."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Dividend(msgspec.Struct, frozen=True):
    """A cash dividend: ex-date (the bar's time in the exchange's zone) and amount per share."""

    date: datetime
    amount: float


class Split(msgspec.Struct, frozen=True):
    """A stock split of ``numerator`` new shares for ``denominator`` old ones (2:1 = 2.0/1.0)."""

    date: datetime
    numerator: float
    denominator: float

    @property
    def ratio(self) -> float:
        return self.numerator / self.denominator if self.denominator else 0.0


class ChartData(msgspec.Struct):
    """One chart answer as marketpulse uses it."""

    candles: list[Candle]
    dividends: list[Dividend]
    splits: list[Split]
    meta: dict[str, Any]
    skipped: int = 0
    """Bars without prices (no trades in the bar), left out as yfinance does."""


# --------------------------------------------------------------------------- parsing (pure)


def exchange_zone(meta: Mapping[str, Any]) -> ZoneInfo:
    """The exchange's time zone from ``meta.exchangeTimezoneName`` (UTC if absent/unknown)."""
    name = meta.get("exchangeTimezoneName")
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _column(values: Any, count: int) -> list[Any]:
    if not isinstance(values, list):
        return [None] * count
    return values + [None] * (count - len(values)) if len(values) < count else values


def parse_chart(result: Mapping[str, Any], symbol: str, interval: str) -> ChartData:
    """A chart ``result`` object → candles oldest first, dividends, splits.

    Intraday bars start at their UTC timestamp. Daily bars are keyed by the exchange-local date
    (Yahoo stamps NSE days at the session open, others at midnight) and start at local midnight;
    a repeated day (Yahoo's duplicated "live" last bar) keeps the later bar. Bars with a null
    price are skipped; a null volume is 0. Prices are rounded to ``meta.priceHint`` decimals
    (Yahoo's doubles are often widened float32 values); ``adj_close`` is kept as given.
    """
    meta = result.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise YahooChartError(f"yahoo: chart for {symbol} has a malformed meta")
    zone = exchange_zone(meta)
    hint = meta.get("priceHint")
    digits = hint if isinstance(hint, int) and 0 < hint <= 10 else None
    stamps = result.get("timestamp") or []
    indicators = result.get("indicators") or {}
    quotes = (indicators.get("quote") or [{}])[0] or {}
    count = len(stamps)
    opens, highs, lows, closes, volumes = (
        _column(quotes.get(k), count) for k in ("open", "high", "low", "close", "volume")
    )
    adjusted = indicators.get("adjclose")
    adj = _column((adjusted[0] or {}).get("adjclose") if adjusted else None, count)
    daily = interval == "1d"
    by_start: dict[datetime, Candle] = {}
    skipped = 0
    for i, stamp in enumerate(stamps):
        o, h, lo, c = opens[i], highs[i], lows[i], closes[i]
        if o is None or h is None or lo is None or c is None:
            skipped += 1
            continue
        moment = datetime.fromtimestamp(float(stamp), UTC)
        if daily:
            moment = datetime.combine(moment.astimezone(zone).date(), time(0), zone)
        if digits is not None:
            o, h, lo, c = round(o, digits), round(h, digits), round(lo, digits), round(c, digits)
        a = adj[i]
        by_start[moment] = Candle(
            symbol, interval, moment, float(o), float(h), float(lo), float(c),
            int(volumes[i] or 0), status="reconciled",
            adj_close=float(a) if a is not None else None,
        )  # fmt: skip
    events = result.get("events") or {}
    return ChartData(
        candles=sorted(by_start.values(), key=lambda candle: candle.start),
        dividends=sorted(
            (Dividend(_event_time(k, v, zone), float(v["amount"]))
             for k, v in (events.get("dividends") or {}).items() if "amount" in v),
            key=lambda d: d.date,
        ),
        splits=sorted(
            (Split(_event_time(k, v, zone), float(v.get("numerator") or 0),
                   float(v.get("denominator") or 0))
             for k, v in (events.get("splits") or {}).items()),
            key=lambda s: s.date,
        ),
        meta=dict(meta), skipped=skipped,
    )  # fmt: skip


def _event_time(key: str, event: Mapping[str, Any], zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(float(event.get("date") or key), UTC).astimezone(zone)


def quote_tick(result: Mapping[str, Any], instrument: TrackedSymbol) -> Tick | None:
    """The quote in a chart answer's ``meta`` (``None`` without ``regularMarketPrice``)."""
    meta = result.get("meta") or {}
    price = meta.get("regularMarketPrice")
    if not isinstance(price, int | float) or isinstance(price, bool):
        return None
    close = meta.get("previousClose") or meta.get("chartPreviousClose")
    change, change_pct = price_change(float(price), close)
    opens = ((result.get("indicators") or {}).get("quote") or [{}])[0].get("open") or []
    day_open = next((float(v) for v in reversed(opens) if v is not None), None)
    stamp = meta.get("regularMarketTime")
    volume = meta.get("regularMarketVolume")
    return Tick(
        source="yahoo", token=instrument.token, exchange=instrument.exchange, mode="quote",
        ltp=float(price), symbol=instrument.symbol or None,
        volume=int(volume) if volume is not None else None, open=day_open,
        high=_num(meta.get("regularMarketDayHigh")), low=_num(meta.get("regularMarketDayLow")),
        close=_num(close), change=change, change_pct=change_pct,
        high_52w=_num(meta.get("fiftyTwoWeekHigh")), low_52w=_num(meta.get("fiftyTwoWeekLow")),
        ts_exchange=int(stamp) * 1000 if isinstance(stamp, int) else None,
    )  # fmt: skip


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def windows(start: datetime, end: datetime, interval: str) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` in request windows of :data:`WINDOW_DAYS` for ``interval``."""
    step = timedelta(days=WINDOW_DAYS[interval])
    cursor = start
    while cursor < end:
        stop = min(end, cursor + step)
        yield cursor, stop
        cursor = stop


# --------------------------------------------------------------------------- HTTP


_pacers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, RateLimiter]] = (
    weakref.WeakKeyDictionary()
)


def shared_limiter(rate: float) -> RateLimiter:
    """One pacer per event loop and rate, so every client in a process shares the budget."""
    per_loop = _pacers.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get(rate)
    if limiter is None:
        limiter = per_loop[rate] = RateLimiter(rate)
    return limiter


CRUMB_TTL_SECONDS: Final = 3600.0
"""How long a fetched cookie and crumb are reused by later clients of the same process."""


@dataclass(slots=True)
class _Crumb:
    value: str | None
    cookies: httpx.Cookies
    fetched_at: float


_crumbs: dict[tuple[str, str], _Crumb] = {}
"""(cookie URL, crumb URL) → the last cookie and crumb: every history page and quote refresh
builds a client, and Yahoo rate-limits its crumb endpoint, so they share one per process."""


def forget_crumbs() -> None:
    """Drop the shared cookies and crumbs: the next client fetches its own (a new Yahoo
    endpoint behind the same URLs, such as a restarted emulator)."""
    _crumbs.clear()


class YahooRestClient:
    """An HTTP session against the chart API with Yahoo's cookie and crumb."""

    def __init__(
        self,
        chart_url: str,
        *,
        cookie_url: str = "",
        crumb_url: str = "",
        rate: float = 2.0,
        timeout: float = 30.0,
        attempts: int = 4,
        base_delay: float = 0.5,
    ) -> None:
        self.chart_url = chart_url.rstrip("/")
        self.cookie_url = cookie_url
        self.crumb_url = crumb_url
        self.rate = rate
        self.attempts = attempts
        self.base_delay = base_delay
        self.crumb: str | None = None
        self._crumb_fetched = False
        self._rng = random.Random()
        self._http = httpx.AsyncClient(
            timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> YahooRestClient:
        return cls(
            settings.yahoo_chart_url, cookie_url=settings.yahoo_cookie_url,
            crumb_url=settings.yahoo_crumb_url, rate=settings.yahoo_rate_limit_per_second,
        )  # fmt: skip

    async def __aenter__(self) -> YahooRestClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    def _reuse_crumb(self) -> bool:
        """Take the process's cookie and crumb if a client fetched them recently."""
        cached = _crumbs.get((self.cookie_url, self.crumb_url))
        if cached is None or monotonic() - cached.fetched_at > CRUMB_TTL_SECONDS:
            return False
        self._http.cookies.update(cached.cookies)
        self.crumb = cached.value
        self._crumb_fetched = True
        return True

    async def refresh_crumb(self) -> str | None:
        """Visit the cookie URL, then read the crumb; any failure leaves no crumb (requests
        still work without one, spec §B3). What it gets is shared with later clients."""
        crumb = await self._fetch_crumb()
        _crumbs[(self.cookie_url, self.crumb_url)] = _Crumb(
            crumb, httpx.Cookies(self._http.cookies), monotonic()
        )
        return crumb

    async def _fetch_crumb(self) -> str | None:
        self._crumb_fetched = True
        self.crumb = None
        if self.cookie_url:
            try:
                await self._http.get(self.cookie_url)
            except httpx.HTTPError as exc:
                log.debug("yahoo: cookie visit failed: %r", exc)
        if not self.crumb_url:
            return None
        try:
            response = await self._http.get(self.crumb_url)
        except httpx.HTTPError as exc:
            log.info("yahoo: no crumb (%r); chart requests go without one", exc)
            return None
        text = response.text.strip()
        if response.status_code != 200 or not text or "Too Many Requests" in text or "<" in text:
            log.info("yahoo: no crumb (HTTP %d); chart requests go without one",
                     response.status_code)  # fmt: skip
            return None
        self.crumb = text
        return text

    async def chart(self, symbol: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The ``result`` object of one chart request (retries and crumb handling included)."""
        if not self._crumb_fetched and self.crumb_url and not self._reuse_crumb():
            await self.refresh_crumb()
        url = f"{self.chart_url}/{quote(symbol, safe='')}"
        limiter = shared_limiter(self.rate)
        retried_crumb = False
        last = ""
        retry_after: float | None = None
        attempt = 0
        while attempt < self.attempts:
            query = dict(params)
            if self.crumb:
                query["crumb"] = self.crumb
            await limiter.acquire()
            try:
                response = await self._http.get(url, params=query)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    return _result_of(response, symbol)
                if status in (401, 403) and not retried_crumb:
                    retried_crumb = True
                    await self.refresh_crumb()
                    continue  # repeated once with a fresh crumb, not counted as an attempt
                if status == 429:
                    last, retry_after = "HTTP 429 Too Many Requests", _retry_after(response)
                elif status >= 500:
                    last = f"HTTP {status}"
                else:
                    raise _chart_error(response, symbol)
            attempt += 1
            if attempt < self.attempts:
                delay = self._rng.uniform(0, self.base_delay * 2**attempt)
                await asyncio.sleep(max(delay, min(retry_after or 0.0, 60.0)))
        if last.startswith("HTTP 429"):
            raise QuoteRateLimitedError(
                f"yahoo: chart {symbol} rate limited after {self.attempts} attempts; lower "
                "YAHOO_RATE_LIMIT_PER_SECOND or try again later",
                retry_after,
            )
        raise QuoteProviderDownError(
            f"yahoo: chart {symbol} failed after {self.attempts} attempts ({last})"
        )

    async def history(
        self, symbol: str, interval: str, start: datetime, end: datetime, events: bool = True
    ) -> dict[str, Any]:
        """Bars of ``interval`` (canonical name) starting in ``[start, end)``."""
        params = {
            "period1": str(int(start.timestamp())), "period2": str(int(end.timestamp())),
            "interval": INTERVALS[interval], "includePrePost": "false",
        }  # fmt: skip
        if events:
            params["events"] = EVENTS
        return await self.chart(symbol, params)

    async def day(self, symbol: str) -> dict[str, Any]:
        """Today's daily bar and meta (what a quote is built from)."""
        return await self.chart(symbol, {"range": "1d", "interval": "1d",
                                         "includePrePost": "false"})  # fmt: skip


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """``(code, description)`` of Yahoo's ``{"chart": {"error": …}}`` body, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200].strip()
    if isinstance(body, Mapping):
        for outer in ("chart", "finance"):
            section = body.get(outer)
            error = section.get("error") if isinstance(section, Mapping) else None
            if isinstance(error, Mapping):
                return str(error.get("code") or ""), str(error.get("description") or "")
    return "", response.text[:200].strip()


def _chart_error(response: httpx.Response, symbol: str) -> YahooChartError:
    code, description = _error_of(response)
    status = response.status_code
    return YahooChartError(
        f"yahoo: chart {symbol}: HTTP {status}"
        + (f" {code}" if code else "") + (f": {description}" if description else ""),
        status, code,
    )  # fmt: skip


def _result_of(response: httpx.Response, symbol: str) -> dict[str, Any]:
    try:
        body = response.json()
        chart = body["chart"]
        error = chart.get("error")
        results = chart.get("result")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise YahooChartError(f"yahoo: chart {symbol}: unexpected answer "
                              f"{response.text[:200]!r}") from None  # fmt: skip
    if error:
        raise YahooChartError(f"yahoo: chart {symbol}: {error}", 200)
    if not results or not isinstance(results[0], dict):
        raise YahooChartError(f"yahoo: chart {symbol}: no result", 200)
    result: dict[str, Any] = results[0]
    return result


async def fetch_quotes(client: YahooRestClient, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """One tick per instrument Yahoo knows: unknown ones (404) are left out, as the
    QuoteFetcher contract asks; any other refusal is a :class:`QuoteProviderDownError`."""

    async def one(item: TrackedSymbol) -> Tick | None:
        try:
            return quote_tick(await client.day(item.token), item)
        except YahooChartError as exc:
            if exc.status not in (400, 404, 422):
                raise QuoteProviderDownError(str(exc)) from exc
            log.info("%s", exc)
            return None

    found = await asyncio.gather(*(one(item) for item in instruments))
    return [tick for tick in found if tick is not None]
