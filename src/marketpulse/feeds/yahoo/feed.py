"""Yahoo Finance as a registered feed: build, start-up subscriptions, replay, resolve, history
and quotes.

Yahoo has no instrument master to download and no login: a symbol's Yahoo id follows from the
canonical symbol (``RELIANCE.NSE`` → ``RELIANCE.NS``, ``NIFTY50.NSE_INDEX`` → ``^NSEI``,
``AAPL.NASDAQ`` → ``AAPL``) and back (:mod:`marketpulse.feeds.yahoo.symbols`), so ``resolve``
maps symbols without the database, like the simulator's. ``SUBSCRIBE`` takes canonical symbols
or Yahoo ids (``RELIANCE.NS``, ``^NSEI``, ``BTC-USD``, ``USDINR=X``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.history import HistoryRequest, HistoryUnavailableError
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.feeds.yahoo import rest, wire
from marketpulse.feeds.yahoo.client import YahooAdapter
from marketpulse.feeds.yahoo.symbols import from_yahoo, to_yahoo
from marketpulse.model import Candle, Mode, SymbolError, Tick, parse_symbol
from marketpulse.subscriptions import TrackedSymbol


class YahooSetupError(FeedError):
    """The Yahoo feed is not configured well enough to start; the message says what to set."""


class UnknownYahooSymbolError(SymbolError):
    """Symbols that have no Yahoo id (or Yahoo ids without a canonical form)."""


def build(settings: Settings) -> FeedAdapter:
    return YahooAdapter.from_settings(settings)


def resolve_one(item: str, mode: str = "quote") -> TrackedSymbol:
    """A canonical symbol or a Yahoo id → its subscription; :class:`SymbolError` if neither."""
    text = item.strip()
    try:
        parsed = parse_symbol(text)
    except SymbolError:
        mapped = from_yahoo(text)
        if mapped is None:
            raise UnknownYahooSymbolError(
                f"yahoo: cannot place {text!r}; write a canonical symbol (RELIANCE.NSE, "
                f"{text.upper()}.NASDAQ, {text.upper()}.NYSE) or a Yahoo id with its suffix "
                "(RELIANCE.NS, ^NSEI, BTC-USD, USDINR=X)"
            ) from None
        symbol, exchange = mapped
        return TrackedSymbol(symbol, "yahoo", to_yahoo(symbol), exchange, Mode(mode).value)
    return TrackedSymbol(str(parsed), "yahoo", to_yahoo(parsed), parsed.exchange.value,
                         Mode(mode).value)  # fmt: skip


def resolve(adapter: FeedAdapter, items: list[str], mode: str) -> list[TrackedSymbol]:
    """Subscriptions for ``items``; the ones that cannot be placed are one error naming all."""
    del adapter
    out: list[TrackedSymbol] = []
    problems: list[str] = []
    for item in items:
        if not item.strip():
            continue
        try:
            out.append(resolve_one(item, mode))
        except SymbolError as exc:
            problems.append(str(exc).removeprefix("yahoo: "))
    if problems:
        raise UnknownYahooSymbolError("yahoo: " + "; ".join(problems))
    return out


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` mapped to Yahoo ids (no instrument master involved)."""
    del resolver
    if not settings.subscribe:
        raise YahooSetupError(
            "yahoo: nothing to stream; set SUBSCRIBE to symbols such as "
            "SUBSCRIBE=RELIANCE.NSE,NIFTY50.NSE_INDEX,AAPL.NASDAQ or Yahoo ids such as "
            "RELIANCE.NS,^NSEI,BTC-USD"
        )
    tracked = resolve(adapter, settings.subscribe, settings.subscribe_mode)
    adapter.track(tracked)
    return tracked


def decode(frame: bytes | str, ts_recv: int) -> list[Tick]:
    """One raw frame of a capture → its tick, exactly as the live connection produced it
    (Yahoo's messages are self-contained snapshots: replay needs no state)."""
    tick = wire.decode_frame(frame, ts_recv).tick
    return [tick] if tick is not None else []


def yahoo_id(instrument: TrackedSymbol) -> str:
    """The Yahoo id of a resolved instrument (its token, or derived from its symbol)."""
    if instrument.token:
        return instrument.token
    return to_yahoo(instrument.symbol)


async def history(settings: Settings, request: HistoryRequest) -> AsyncIterator[list[Candle]]:
    """Candles from the chart API, one page per request window (1m: 7 days, 5m/15m: 30 days,
    1h: a year, 1d: ten years), oldest first, with ``adj_close`` on daily bars."""
    instrument = request.instrument
    try:
        ident = yahoo_id(instrument)
    except SymbolError as exc:
        raise HistoryUnavailableError(str(exc)) from None
    async with rest.YahooRestClient.from_settings(settings) as client:
        for start, end in rest.windows(request.start, request.end, request.interval):
            try:
                result = await client.history(ident, request.interval, start, end)
            except rest.YahooChartError as exc:
                if exc.status in (400, 404, 422):
                    raise HistoryUnavailableError(f"{exc} ({rest.LOOKBACK_HINT})") from None
                raise
            candles = rest.parse_chart(result, instrument.symbol, request.interval).candles
            if request.interval == "1d":  # local midnights: the caller aligns and filters
                yield candles
            else:
                yield [c for c in candles if request.start <= c.start < request.end]


async def quotes(settings: Settings, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """Quotes from the chart API's ``meta`` (see :func:`rest.quote_tick`)."""
    async with rest.YahooRestClient.from_settings(settings) as client:
        return await rest.fetch_quotes(client, instruments)


SPEC = FeedSpec(
    name="yahoo",
    build=build,
    startup=startup,
    decode=decode,
    resolve=resolve,
    history=history,
    quotes=quotes,
)
