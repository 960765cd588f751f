"""SmartAPI market-data REST JSON ↔ marketpulse's ``Tick`` and ``Candle`` (pure functions).

Quotes come from ``POST /rest/secure/angelbroking/market/v1/quote/`` and candles from
``POST /rest/secure/angelbroking/historical/v1/getCandleData``; :mod:`.rest` does the HTTP, this
module only builds request bodies and reads responses, so both are testable without a server.
Unlike the binary stream, the REST API speaks rupees (floats) and IST wall-clock strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from marketpulse.feeds.angelone.wire import SOURCE
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import Candle, DepthLevel, Exchange, Mode, Tick, price_change

# --------------------------------------------------------------------------- quotes

QUOTE_MODES: Final[Mapping[Mode, str]] = {Mode.LTP: "LTP", Mode.QUOTE: "OHLC", Mode.FULL: "FULL"}
"""Canonical mode → the quote API's ``mode`` (it calls the middle one OHLC)."""

MAX_QUOTE_TOKENS: Final = 50
"""Tokens per quote request (SmartAPI staff on the forum; more is refused)."""

API_EXCHANGE: Final[Mapping[str, str]] = {
    Exchange.NSE_INDEX.value: Exchange.NSE.value,
    Exchange.BSE_INDEX.value: Exchange.BSE.value,
}
"""The REST API files indices under their cash exchange, like the stream does."""


def api_exchange(exchange: str) -> str:
    return API_EXCHANGE.get(exchange, exchange)


def quote_body(mode: Mode, instruments: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The request for ``(canonical exchange, token)`` pairs, grouped by API exchange."""
    groups: dict[str, list[str]] = {}
    for exchange, token in instruments:
        groups.setdefault(api_exchange(exchange), []).append(token)
    return {"mode": QUOTE_MODES[Mode(mode)], "exchangeTokens": groups}


@dataclass(frozen=True, slots=True)
class Unfetched:
    """A token the quote API could not answer for (unknown token, no data, ...)."""

    exchange: str
    token: str
    message: str


def parse_quotes(
    data: Mapping[str, Any] | None,
    mode: Mode,
    requested: Iterable[tuple[str, str]],
    ts_recv: int,
) -> tuple[list[Tick], list[Unfetched]]:
    """Ticks from a quote response's ``data``; ``requested`` restores the canonical exchange.

    Absent fields stay ``None``; ``change``/``change_pct`` are derived from ``close`` (the
    previous session's close) as everywhere else; depth levels with zero quantity are empty and
    dropped. ``exchFeedTime`` (IST, whole seconds) becomes ``ts_exchange``.
    """
    canonical = {(api_exchange(ex), token): ex for ex, token in requested}
    data = data or {}
    ticks: list[Tick] = []
    for item in data.get("fetched") or ():
        exchange_raw = str(item.get("exchange", ""))
        token = str(item.get("symbolToken", ""))
        exchange = canonical.get((exchange_raw, token), exchange_raw)
        ltp = _float(item.get("ltp")) or 0.0
        close = _float(item.get("close"))
        tick = Tick(SOURCE, token, exchange, Mode(mode).value, ltp, ts_recv=ts_recv)
        if mode is not Mode.LTP:
            tick.open = _float(item.get("open"))
            tick.high = _float(item.get("high"))
            tick.low = _float(item.get("low"))
            tick.close = close
            tick.change, tick.change_pct = price_change(ltp, close)
        if mode is Mode.FULL:
            tick.ltq = _int(item.get("lastTradeQty"))
            tick.atp = _float(item.get("avgPrice"))
            tick.volume = _int(item.get("tradeVolume"))
            tick.total_buy_qty = _int(item.get("totBuyQuan"))
            tick.total_sell_qty = _int(item.get("totSellQuan"))
            tick.oi = _int(item.get("opnInterest"))
            tick.upper_circuit = _float(item.get("upperCircuit"))
            tick.lower_circuit = _float(item.get("lowerCircuit"))
            tick.high_52w = _float(item.get("52WeekHigh"))
            tick.low_52w = _float(item.get("52WeekLow"))
            tick.ts_exchange = parse_feed_time(item.get("exchFeedTime"))
            tick.ts_last_trade = parse_feed_time(item.get("exchTradeTime"))
            depth = item.get("depth") or {}
            tick.bids = _levels(depth.get("buy"))
            tick.asks = _levels(depth.get("sell"))
        ticks.append(tick)
    missing = [
        Unfetched(str(u.get("exchange", "")), str(u.get("symbolToken", "")),
                  str(u.get("message", "")))
        for u in data.get("unfetched") or ()
    ]  # fmt: skip
    return ticks, missing


def format_feed_time(ts_ms: int) -> str:
    """The API's ``exchFeedTime`` spelling of an epoch-ms instant (IST, whole seconds)."""
    local = datetime.fromtimestamp(ts_ms / 1000, IST)
    return f"{local.day:02d}-{_MONTH_NAMES[local.month - 1]}-{local:%Y %H:%M:%S}"


def parse_feed_time(value: object) -> int | None:
    """``21-Dec-2023 11:52:09`` (IST) → epoch ms; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        day, month, rest = value.strip().split("-", 2)
        year_time = datetime.strptime(rest, "%Y %H:%M:%S")
        number = _MONTH_NAMES.index(month.title()) + 1
        local = year_time.replace(month=number, day=int(day), tzinfo=IST)
    except ValueError:
        return None
    return int(local.timestamp() * 1000)


_MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def _levels(raw: object) -> list[DepthLevel] | None:
    if not isinstance(raw, list):
        return None
    levels = []
    for level in raw:
        if isinstance(level, Mapping):
            qty = _int(level.get("quantity")) or 0
            price = _float(level.get("price"))
            if qty > 0 and price is not None:
                levels.append(DepthLevel(price, qty, _int(level.get("orders")) or 0))
    return levels


def _float(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


# --------------------------------------------------------------------------- candles


class Interval(StrEnum):
    """Every candle interval ``getCandleData`` offers, by its canonical short name."""

    ONE_MINUTE = "1m"
    THREE_MINUTE = "3m"
    FIVE_MINUTE = "5m"
    TEN_MINUTE = "10m"
    FIFTEEN_MINUTE = "15m"
    THIRTY_MINUTE = "30m"
    ONE_HOUR = "1h"
    ONE_DAY = "1d"

    @property
    def api_name(self) -> str:
        """The API's name, e.g. ``FIVE_MINUTE``."""
        return self.name

    @property
    def max_days(self) -> int:
        """Longest span of one request (SmartAPI's documented per-interval limits)."""
        return MAX_DAYS[self]

    @property
    def length(self) -> timedelta:
        return LENGTHS[self]

    @classmethod
    def parse(cls, text: str) -> Interval:
        """``5m`` or ``FIVE_MINUTE`` (any case); ValueError listing both spellings otherwise."""
        raw = text.strip()
        for member in cls:
            if raw.lower() == member.value or raw.upper() == member.name:
                return member
        names = ", ".join(f"{m.value} ({m.name})" for m in cls)
        raise ValueError(f"unknown Angel One candle interval {text!r}; use one of {names}")


MAX_DAYS: Final[Mapping[Interval, int]] = {
    Interval.ONE_MINUTE: 30,
    Interval.THREE_MINUTE: 60,
    Interval.FIVE_MINUTE: 100,
    Interval.TEN_MINUTE: 100,
    Interval.FIFTEEN_MINUTE: 200,
    Interval.THIRTY_MINUTE: 200,
    Interval.ONE_HOUR: 400,
    Interval.ONE_DAY: 2000,
}
LENGTHS: Final[Mapping[Interval, timedelta]] = {
    Interval.ONE_MINUTE: timedelta(minutes=1),
    Interval.THREE_MINUTE: timedelta(minutes=3),
    Interval.FIVE_MINUTE: timedelta(minutes=5),
    Interval.TEN_MINUTE: timedelta(minutes=10),
    Interval.FIFTEEN_MINUTE: timedelta(minutes=15),
    Interval.THIRTY_MINUTE: timedelta(minutes=30),
    Interval.ONE_HOUR: timedelta(hours=1),
    Interval.ONE_DAY: timedelta(days=1),
}

_API_TIME_FORMAT: Final = "%Y-%m-%d %H:%M"
_MINUTE: Final = timedelta(minutes=1)


def as_ist(moment: datetime) -> datetime:
    """An aware datetime in IST, to the minute; a naive one is taken to be IST already."""
    aware = moment.replace(tzinfo=IST) if moment.tzinfo is None else moment.astimezone(IST)
    return aware.replace(second=0, microsecond=0)


def format_api_time(moment: datetime) -> str:
    """``fromdate``/``todate`` spelling: IST wall clock to the minute."""
    return as_ist(moment).strftime(_API_TIME_FORMAT)


def parse_api_time(text: str) -> datetime:
    """The inverse of :func:`format_api_time` (raises ValueError)."""
    return datetime.strptime(text.strip(), _API_TIME_FORMAT).replace(tzinfo=IST)


def plan_chunks(
    start: datetime, end: datetime, interval: Interval
) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end]`` into request windows no longer than the interval allows.

    Windows are inclusive at both ends and one minute apart (the API's precision), so a candle
    lands in exactly one window: nothing is fetched twice and nothing falls in a gap.
    """
    first, last = as_ist(start), as_ist(end)
    if last < first:
        raise ValueError(
            f"the end {last:%Y-%m-%d %H:%M} is before the start {first:%Y-%m-%d %H:%M}"
        )
    span = timedelta(days=interval.max_days)
    chunks = []
    cursor = first
    while cursor <= last:
        stop = min(cursor + span, last)
        chunks.append((cursor, stop))
        cursor = stop + _MINUTE
    return chunks


def candle_body(
    exchange: str, token: str, interval: Interval, start: datetime, end: datetime
) -> dict[str, str]:
    return {
        "exchange": api_exchange(exchange),
        "symboltoken": token,
        "interval": interval.api_name,
        "fromdate": format_api_time(start),
        "todate": format_api_time(end),
    }


def parse_candles(
    data: object, symbol: str, interval: Interval, now: datetime | None = None
) -> list[Candle]:
    """``[[time, open, high, low, close, volume], ...]`` → candles (UTC start times).

    A candle whose bucket has not ended by ``now`` is ``live``, every other one ``closed``.
    Rows that cannot be read are skipped (the caller counts them via the length difference).
    """
    if not isinstance(data, list):
        return []
    moment = now or datetime.now(UTC)
    out: list[Candle] = []
    for row in data:
        if not isinstance(row, list | tuple) or len(row) < 6:
            continue
        try:
            start = datetime.fromisoformat(str(row[0]))
            if start.tzinfo is None:
                start = start.replace(tzinfo=IST)
            values = [float(v) for v in row[1:6]]
        except (TypeError, ValueError):
            continue
        status = "live" if start + interval.length > moment else "closed"
        out.append(
            Candle(symbol=symbol, interval=interval.value, start=start.astimezone(UTC),
                   open=values[0], high=values[1], low=values[2], close=values[3],
                   volume=int(values[4]), status=status)
        )  # fmt: skip
    return out


def merge_candles(batches: Iterable[Sequence[Candle]]) -> list[Candle]:
    """One ordered list from chunked responses; a repeated start keeps the later answer."""
    by_start: dict[datetime, Candle] = {}
    for batch in batches:
        for candle in batch:
            by_start[candle.start] = candle
    return [by_start[k] for k in sorted(by_start)]
