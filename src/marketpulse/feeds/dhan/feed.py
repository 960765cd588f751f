"""Dhan as a registered feed: build, start-up subscriptions, replay, instrument master, history.

Start-up resolves ``SUBSCRIBE`` (canonical symbols, or ``SEGMENT|ID`` keys such as
``NSE_EQ|1333``) through the instrument master that ``marketpulse instruments sync --provider
dhan`` fills; the resolved entries teach the adapter each key's symbol and exchange.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.dhan import instruments as master
from marketpulse.feeds.dhan import rest, wire
from marketpulse.feeds.dhan.client import DhanAdapter
from marketpulse.feeds.history import HistoryRequest, HistoryUnavailableError
from marketpulse.feeds.http import download
from marketpulse.feeds.quotes import QuoteProviderDownError
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.model import Candle, Tick
from marketpulse.store.instruments import InstrumentRecord, Progress
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)


class DhanSetupError(FeedError):
    """The Dhan feed is not configured well enough to start; the message says what to set."""


def build(settings: Settings) -> FeedAdapter:
    return DhanAdapter.from_settings(settings)


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` resolved through the instrument master, in ``SUBSCRIBE_MODE``."""
    if not settings.subscribe:
        raise DhanSetupError(
            "dhan: nothing to stream; set SUBSCRIBE to symbols such as "
            "SUBSCRIBE=HDFCBANK.NSE,NIFTY50.NSE_INDEX (after `marketpulse instruments sync "
            "--provider dhan`) or to Dhan keys such as NSE_EQ|1333"
        )
    tracked = await resolver(adapter.name, settings.subscribe)
    adapter.track(tracked)
    return tracked


_replay_state = wire.InstrumentState()
_replay_full: dict[str, Tick] = {}


def decode(frame: bytes | str, ts_recv: int) -> list[Tick]:
    """One raw frame of a capture → ticks, exactly as the live connection produced them.

    Prev-close, OI and 20-level depth arrive in packets of their own and are stamped on later
    ticks, so replay keeps that per-instrument state across the calls of one process (captures
    are replayed in order). 20-level depth messages are recognised by their header (length 332
    little-endian, code 41/51 at byte 2), which no main-feed packet starts with.
    """
    if isinstance(frame, str):
        return []
    if len(frame) >= 3 and frame[0] == 0x4C and frame[1] == 0x01 and frame[2] in (41, 51):
        return _replay_state.depth(wire.decode_depth_message(frame), _replay_full)
    ticks = _replay_state.apply(wire.decode_message(frame, ts_recv))
    for tick in ticks:
        if tick.mode == "full":
            _replay_full[tick.token] = tick
    return ticks


async def instruments(settings: Settings, progress: Progress | None) -> list[InstrumentRecord]:
    """Download the scrip master CSV (no login needed) and map it to canonical records."""
    text = (await download(settings.dhan_scrip_master_url, progress)).decode("utf-8-sig")
    try:
        parsed = master.parse_master(text)
    except ValueError as exc:
        raise FeedError(str(exc)) from exc
    log.info("dhan instrument master: %s", parsed.summary())
    return parsed.records


async def history(settings: Settings, request: HistoryRequest) -> AsyncIterator[list[Candle]]:
    """Daily candles from ``/charts/historical``; intraday (1m/5m/15m/1h) from
    ``/charts/intraday`` in windows of 90 days. Derivatives ask for OI too."""
    instrument = request.instrument
    try:
        segment, _ = wire.parse_key(instrument.token)
    except ValueError as exc:
        raise HistoryUnavailableError(str(exc)) from None
    kind = rest.instrument_type(instrument.token, instrument.symbol)
    oi = segment not in ("NSE_EQ", "BSE_EQ", "IDX_I")
    async with rest.DhanRestClient.from_settings(settings) as client:
        if request.interval == "1d":
            body = await client.daily(instrument.token, kind, request.start, request.end, oi)
            yield rest.parse_candles(body, instrument.symbol, "1d")
            return
        code = rest.INTRADAY_INTERVALS[request.interval]
        for start, end in rest.intraday_windows(request.start, request.end):
            body = await client.intraday(instrument.token, kind, code, start, end, oi)
            yield [
                c
                for c in rest.parse_candles(body, instrument.symbol, request.interval)
                if request.start <= c.start < request.end
            ]


async def quotes(settings: Settings, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """``/v2/marketfeed/quote`` for ``SEGMENT|ID`` keys, 1000 instruments a request."""
    by_key = {i.token: i for i in instruments}
    try:
        async with rest.DhanRestClient.from_settings(settings) as client:
            answered = await client.quotes("quote", list(by_key))
    except rest.DhanApiError as exc:
        if exc.status == 0:  # retries of 429/5xx/network errors exhausted
            raise QuoteProviderDownError(str(exc)) from exc
        raise
    now = time.time_ns()
    return [
        rest.quote_tick(quote, key, by_key[key].symbol, by_key[key].exchange, now)
        for key, quote in answered.items()
        if key in by_key
    ]


SPEC = FeedSpec(
    name="dhan",
    build=build,
    startup=startup,
    decode=decode,
    instruments=instruments,
    history=history,
    quotes=quotes,
)
