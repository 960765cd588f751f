"""The emulated chart API (``/v8/finance/chart/{symbol}``) and the cookie/crumb endpoints.

Bars come from the Kite emulator's deterministic one-minute generator (a pure function of seed,
instrument and day), stamped from each venue's session open in its own zone and aggregated to
the asked interval, so repeated requests agree and a 5m bar is the aggregate of its 1m bars.
Daily bars are stamped at the session open (09:15 IST for NSE, as Yahoo does). Corporate actions
are deterministic too: an equity pays a dividend every 61st weekday-ordinal and splits 2:1 every
367th (pure functions of the day and the instrument), and ``adjclose`` is ``close`` times the
product of ``1 − dividend / previous close`` over every later dividend up to today (Yahoo's
method; ``close`` itself is taken as already split-adjusted).

Limits as Yahoo's (spec §B1): 1m bars only for the last 30 days and at most 8 days per request,
2m–90m for 60 days, 60m/1h for 730 days — else HTTP 422 with a ``chart.error``. Unknown symbol:
404 with ``{"code": "Not Found", "description": "No data found, symbol may be delisted"}``.
``emulator.rate_limit_next = N`` makes the next N requests answer 429 ``Too Many Requests``;
with ``require_crumb`` a request without the crumb gets 401 "Invalid Crumb".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from marketpulse.emulators.candles import SESSION_MINUTES, aggregate, minute_bars, trading_days
from marketpulse.emulators.candles import Bar as CandleBar
from marketpulse.emulators.yahoo.core import COOKIE_NAME, Listing, YahooEmulator

router = APIRouter()

Bar = tuple[float, float, float, float, int]
"""open, high, low, close, volume."""

VALID_RANGES: Final = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
MINUTES: Final[dict[str, int]] = {"1m": 1, "2m": 2, "5m": 5, "15m": 15, "30m": 30, "60m": 60,
                                  "90m": 90, "1h": 60}  # fmt: skip
LOOKBACK_DAYS: Final[dict[str, int]] = {"1m": 30, "2m": 60, "5m": 60, "15m": 60, "30m": 60,
                                        "90m": 60, "60m": 730, "1h": 730}  # fmt: skip
HISTORY_YEARS: Final = 5
"""``firstTradeDate`` (and so ``range=max``) is this many years back: generated bars cost."""
DIVIDEND_EVERY: Final = 61
SPLIT_EVERY: Final = 367


class ChartError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"chart": {"result": None, "error": {"code": code, "description": description}}},
        status_code=status,
    )


# --------------------------------------------------------------------------- pure bar maths


def _minutes(emulator: YahooEmulator, item: Listing, day: date) -> tuple[CandleBar, ...]:
    spec = item.spec
    return minute_bars(emulator.options.seed, int(spec.token), day, spec.close,
                       spec.instrument.tick_size, not spec.is_index, False)  # fmt: skip


def _aggregate(bars: tuple[CandleBar, ...]) -> Bar:
    return aggregate(bars)[:5]


def session_open(item: Listing, day: date) -> datetime:
    return datetime.combine(day, item.venue.open, ZoneInfo(item.venue.zone))


def bars(
    emulator: YahooEmulator, item: Listing, interval: str, start: datetime, end: datetime,
    now: datetime,
) -> list[tuple[datetime, Bar]]:  # fmt: skip
    """Bars of ``interval`` starting in ``[start, end)`` and not after ``now``."""
    zone = ZoneInfo(item.venue.zone)
    size = MINUTES.get(interval)
    out: list[tuple[datetime, Bar]] = []
    first = start.astimezone(zone).date()
    last = min(end, now).astimezone(zone).date()
    for day in trading_days(first, last):
        minutes = _minutes(emulator, item, day)
        opening = session_open(item, day)
        if size is None:
            if start <= opening < end and opening <= now:
                out.append((opening, _aggregate(minutes)))
            continue
        for offset in range(0, SESSION_MINUTES, size):
            moment = opening + timedelta(minutes=offset)
            if start <= moment < end and moment <= now:
                out.append((moment, _aggregate(minutes[offset : offset + size])))
    return out


def dividend(emulator: YahooEmulator, item: Listing, day: date) -> float | None:
    """The dividend going ex on ``day``, if any."""
    if not item.is_equity or day.weekday() >= 5:
        return None
    if (day.toordinal() + int(item.spec.token)) % DIVIDEND_EVERY:
        return None
    return round(item.spec.close * 0.004, 2)


def split(item: Listing, day: date) -> tuple[float, float] | None:
    if not item.is_equity or day.weekday() >= 5:
        return None
    if (day.toordinal() + int(item.spec.token)) % SPLIT_EVERY:
        return None
    return 2.0, 1.0


def previous_close(emulator: YahooEmulator, item: Listing, day: date) -> float:
    """The close of the trading day before ``day``."""
    before = day - timedelta(days=1)
    while before.weekday() >= 5:
        before -= timedelta(days=1)
    return float(_minutes(emulator, item, before)[-1][3])


def adjustment_factors(
    emulator: YahooEmulator, item: Listing, first: date, today: date
) -> dict[date, float]:
    """Per trading day in ``[first, today]``: the dividend factor ``adjclose / close``."""
    factor = 1.0
    out: dict[date, float] = {}
    for day in reversed(list(trading_days(first, today))):
        out[day] = factor
        amount = dividend(emulator, item, day)
        if amount is not None:
            factor *= 1.0 - amount / previous_close(emulator, item, day)
    return out


# --------------------------------------------------------------------------- the answer


def _range_start(name: str, now: datetime, item: Listing) -> datetime:
    zone = ZoneInfo(item.venue.zone)
    today = now.astimezone(zone).date()
    if name in ("1d", "5d"):
        days = list(trading_days(today - timedelta(days=14), today))
        day = days[-int(name[0])]
        return datetime.combine(day, datetime.min.time(), zone)
    if name == "ytd":
        return datetime(today.year, 1, 1, tzinfo=zone)
    if name == "max":
        return first_trade(now)
    count = int(name[:-2] if name.endswith("mo") else name[:-1])
    return now - timedelta(days=30 * count if name.endswith("mo") else 365 * count)


def first_trade(now: datetime) -> datetime:
    return (now - timedelta(days=365 * HISTORY_YEARS)).replace(microsecond=0)


def chart_result(
    emulator: YahooEmulator, item: Listing, params: dict[str, str], now: datetime
) -> dict[str, Any]:
    """The ``result[0]`` object for a request; :class:`ChartError` for what Yahoo refuses."""
    interval = params.get("interval", "1d").lower()
    if interval not in MINUTES and interval != "1d":
        raise ChartError(422, "Unprocessable Entity",
                         f"Invalid input - interval={interval} is not supported by the "
                         "emulator (1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 1d)")  # fmt: skip
    range_name = params.get("range")
    try:
        if "period1" in params:
            start = datetime.fromtimestamp(int(params["period1"]), UTC)
            end = datetime.fromtimestamp(int(params.get("period2") or now.timestamp()), UTC)
        elif range_name in VALID_RANGES:
            start, end = _range_start(range_name, now, item), now + timedelta(seconds=1)
        else:
            raise ChartError(422, "Unprocessable Entity",
                             f"Invalid input - range={range_name} is not one of "
                             f"{','.join(VALID_RANGES)}")  # fmt: skip
    except ValueError:
        raise ChartError(422, "Unprocessable Entity", "Invalid input - period1/period2") from None
    lookback = LOOKBACK_DAYS.get(interval)
    if lookback is not None and start < now - timedelta(days=lookback):
        raise ChartError(
            422, "Unprocessable Entity",
            f"{interval} data not available for startTime={int(start.timestamp())}. "
            f"The requested range must be within the last {lookback} days.",
        )  # fmt: skip
    if interval == "1m" and end - start > timedelta(days=8):
        raise ChartError(422, "Unprocessable Entity", "Only 8 days worth of 1m granularity data "
                         "are allowed to be fetched per request.")  # fmt: skip
    rows = bars(emulator, item, interval, start, end, now)
    zone = ZoneInfo(item.venue.zone)
    quote: dict[str, list[Any]] = {k: [] for k in ("open", "high", "low", "close", "volume")}
    stamps = []
    for moment, bar in rows:
        stamps.append(int(moment.timestamp()))
        for name, value in zip(("open", "high", "low", "close", "volume"), bar, strict=True):
            quote[name].append(value)
    if not item.is_equity and item.quote_type != 41:
        quote["volume"] = [0] * len(stamps)
    result: dict[str, Any] = {
        "meta": meta(emulator, item, interval, range_name, rows, now),
        "timestamp": stamps,
        "indicators": {"quote": [quote]},
    }
    if not stamps:
        del result["timestamp"]
    if interval == "1d":
        today = now.astimezone(zone).date()
        factors = adjustment_factors(emulator, item, start.astimezone(zone).date(), today)
        result["indicators"]["adjclose"] = [{"adjclose": [
            round(bar[3] * factors.get(moment.astimezone(zone).date(), 1.0), 6)
            for moment, bar in rows]}]  # fmt: skip
    wanted = params.get("events", "")
    events: dict[str, Any] = {}
    if "div" in wanted or "split" in wanted:
        for day in trading_days(
            start.astimezone(zone).date(), min(end, now).astimezone(zone).date()
        ):
            moment = session_open(item, day)
            if not start <= moment < end:
                continue
            stamp = int(moment.timestamp())
            amount = dividend(emulator, item, day)
            if amount is not None and "div" in wanted:
                events.setdefault("dividends", {})[str(stamp)] = {"amount": amount,
                                                                  "date": stamp}  # fmt: skip
            ratio = split(item, day)
            if ratio is not None and "split" in wanted:
                events.setdefault("splits", {})[str(stamp)] = {
                    "date": stamp, "numerator": ratio[0], "denominator": ratio[1],
                    "splitRatio": f"{ratio[0]:g}:{ratio[1]:g}"}  # fmt: skip
    if events:
        result["events"] = events
    return result


def meta(
    emulator: YahooEmulator, item: Listing, interval: str, range_name: str | None,
    rows: list[tuple[datetime, Bar]], now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """``meta`` with the live state (the last streamed tick) as the regular-market quote."""
    venue = item.venue
    spec = item.spec
    tick = emulator.last.get(item.yahoo_id)
    zone = ZoneInfo(venue.zone)
    today = now.astimezone(zone).date()
    open_at = session_open(item, today)
    close_at = open_at + timedelta(minutes=SESSION_MINUTES)
    offset = int((open_at.utcoffset() or timedelta()).total_seconds())
    period = {"timezone": venue.abbreviation, "gmtoffset": offset}
    kinds = {8: "EQUITY", 9: "INDEX", 41: "CRYPTOCURRENCY"}
    previous = tick.close if tick is not None and tick.close else spec.close
    chart_previous = previous
    if rows and range_name != "1d":
        chart_previous = previous_close(emulator, item, rows[0][0].astimezone(zone).date())
    out: dict[str, Any] = {
        "currency": venue.currency, "symbol": item.yahoo_id, "exchangeName": item.exchange_code,
        "fullExchangeName": venue.full_name, "instrumentType": kinds.get(item.quote_type, "EQUITY"),
        "firstTradeDate": int(first_trade(now).timestamp()),
        "regularMarketTime": (tick.ts_exchange // 1000 if tick and tick.ts_exchange
                              else int(now.timestamp())),
        "hasPrePostMarketData": False, "gmtoffset": offset, "timezone": venue.abbreviation,
        "exchangeTimezoneName": venue.zone,
        "regularMarketPrice": tick.ltp if tick else spec.close,
        "fiftyTwoWeekHigh": round(spec.close * 1.25, 2),
        "fiftyTwoWeekLow": round(spec.close * 0.75, 2),
        "regularMarketDayHigh": tick.high if tick and tick.high else None,
        "regularMarketDayLow": tick.low if tick and tick.low else None,
        "regularMarketVolume": tick.volume if tick and tick.volume is not None else 0,
        "longName": spec.instrument.name, "shortName": item.short_name,
        "chartPreviousClose": chart_previous, "priceHint": 2,
        "currentTradingPeriod": {
            "pre": {**period, "start": int(open_at.timestamp()), "end": int(open_at.timestamp())},
            "regular": {**period, "start": int(open_at.timestamp()),
                        "end": int(close_at.timestamp())},
            "post": {**period, "start": int(close_at.timestamp()),
                     "end": int(close_at.timestamp())},
        },
        "dataGranularity": interval, "range": range_name or "", "validRanges": VALID_RANGES,
    }  # fmt: skip
    if range_name in ("1d", "5d"):
        out["previousClose"] = previous
        out["scale"] = 3
    if interval != "1d":
        days = sorted({moment.astimezone(zone).date() for moment, _ in rows})
        out["tradingPeriods"] = [
            [{**period, "start": int(session_open(item, d).timestamp()),
              "end": int((session_open(item, d) + timedelta(minutes=SESSION_MINUTES)).timestamp())}]
            for d in days
        ]  # fmt: skip
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------- routes


@router.get("/v8/finance/chart/{symbol:path}")
async def chart(symbol: str, request: Request) -> Response:
    emulator: YahooEmulator = request.app.state.emulator
    emulator.chart_requests.append(str(request.url.path) + "?" + str(request.url.query))
    if emulator.rate_limit_next > 0:
        emulator.rate_limit_next -= 1
        return PlainTextResponse("Too Many Requests", status_code=429)
    params = dict(request.query_params)
    if emulator.require_crumb and params.get("crumb") != emulator.crumb:
        return JSONResponse({"finance": {"result": None, "error": {
            "code": "Unauthorized", "description": "Invalid Crumb"}}}, status_code=401)  # fmt: skip
    item = emulator.by_id.get(symbol)
    if item is None:
        return _error(404, "Not Found", "No data found, symbol may be delisted")
    now = datetime.fromtimestamp(emulator.options.clock(), UTC)
    try:
        result = chart_result(emulator, item, params, now)
    except ChartError as exc:
        return _error(exc.status, exc.code, exc.description)
    return JSONResponse({"chart": {"result": [result], "error": None}})


@router.get("/")
async def cookie(request: Request) -> Response:
    """Like ``fc.yahoo.com``: a 404 page that sets Yahoo's ``A3`` cookie."""
    response = PlainTextResponse("Not Found", status_code=404)
    response.set_cookie(COOKIE_NAME, "emulated-cookie", httponly=True)
    return response


@router.get("/v1/test/getcrumb")
async def crumb(request: Request) -> Response:
    emulator: YahooEmulator = request.app.state.emulator
    emulator.crumb_requests += 1
    if COOKIE_NAME not in request.cookies:
        return PlainTextResponse("Unauthorized", status_code=401)
    return PlainTextResponse(emulator.crumb)
