"""The Kite feed as the service sees it: build, start-up subscriptions, replay, instrument master.

Kite streams only what is asked for, and its tokens mean nothing to a user, so start-up
resolves ``SUBSCRIBE`` (canonical symbols or Kite instrument tokens) through the instrument
master that ``marketpulse instruments sync --provider kite`` fills.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, timedelta
from typing import Final

import msgspec

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.history import HistoryRequest, HistoryUnavailableError
from marketpulse.feeds.kite.client import KiteAdapter
from marketpulse.feeds.kite.instruments import parse_instruments
from marketpulse.feeds.kite.rest import KiteApiError, KiteRestClient, historical_chunks
from marketpulse.feeds.kite.wire import decode_frame, segment_of
from marketpulse.feeds.quotes import http_quote_errors
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.model import Candle, Tick
from marketpulse.store.instruments import InstrumentRecord, Progress
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

_INDEX_SEGMENT = 9


class KiteSetupError(FeedError):
    """The Kite feed is not configured well enough to start; the message says what to set."""


def build(settings: Settings) -> FeedAdapter:
    return KiteAdapter.from_settings(settings)


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` resolved through the instrument master, in ``SUBSCRIBE_MODE``."""
    assert isinstance(adapter, KiteAdapter)
    if not settings.subscribe:
        raise KiteSetupError(
            "kite: nothing to stream; set SUBSCRIBE to symbols such as "
            "SUBSCRIBE=RELIANCE.NSE,NIFTY50.NSE_INDEX (after `marketpulse instruments sync "
            "--provider kite`) or to Kite instrument tokens"
        )
    tracked = await resolver(adapter.name, settings.subscribe)
    # An index token does not say whose index it is (segment 9 holds NSE's and BSE's).
    adapter.index_exchanges.update(
        (int(t.token), t.exchange)
        for t in tracked
        if t.token.isdigit() and segment_of(int(t.token)) == _INDEX_SEGMENT
    )
    return tracked


def decode(frame: bytes | str, ts_recv: int) -> list[Tick]:
    """One raw frame of a capture: binary frames decode to ticks, text frames to none."""
    if isinstance(frame, str):
        return []
    return decode_frame(frame, ts_recv).ticks


async def instruments(settings: Settings, progress: Progress | None) -> list[InstrumentRecord]:
    """Download the instrument dump (no login needed) and map it to canonical records."""
    async with KiteRestClient.from_settings(settings, require_session=False) as client:
        text = await client.instruments(progress=progress)
    parsed = parse_instruments(text)
    log.info("kite instrument master: %s", parsed.summary())
    return parsed.records


KITE_INTERVALS: Final = {"1m": "minute", "5m": "5minute", "15m": "15minute", "1h": "60minute",
                         "1d": "day"}  # fmt: skip
"""Canonical candle interval → Kite's name for it."""


async def history(settings: Settings, request: HistoryRequest) -> AsyncIterator[list[Candle]]:
    """Kite's historical candles (with OI), one page per request its span limits allow."""
    token = request.instrument.token
    if not token.isdigit():
        raise HistoryUnavailableError(f"kite: {token!r} is not a Kite instrument token")
    interval = KITE_INTERVALS[request.interval]
    symbol = request.instrument.symbol
    # Kite's ranges are inclusive to the second; ours end before ``end``.
    last = request.end - timedelta(seconds=1)
    async with KiteRestClient.from_settings(settings) as client:
        for chunk_start, chunk_end in historical_chunks(request.start, last, interval):
            rows = await client.historical(token, interval, chunk_start, chunk_end, oi=True)
            yield [
                Candle(symbol, request.interval, row.start.astimezone(UTC), row.open, row.high,
                       row.low, row.close, row.volume, row.oi, status="reconciled")
                for row in rows
            ]  # fmt: skip


async def quotes(settings: Settings, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """Full quotes from ``/quote`` (500 instruments a request, 1 request/s), keyed by
    ``EXCHANGE:TRADINGSYMBOL`` as the instrument master recorded it."""
    by_key: dict[str, TrackedSymbol] = {}
    for instrument in instruments:
        name = instrument.broker_symbol or instrument.symbol.rpartition(".")[0]
        by_key[f"{instrument.exchange.removesuffix('_INDEX')}:{name}"] = instrument
    with http_quote_errors(KiteApiError):
        async with KiteRestClient.from_settings(settings) as client:
            answered = await client.quote(list(by_key))
    now = time.time_ns()
    ticks = []
    for key, quote in answered.items():
        asked = by_key.get(key)
        if asked is not None:
            tick = quote.to_tick(now, asked.symbol)
            ticks.append(msgspec.structs.replace(tick, exchange=asked.exchange))
    return ticks


SPEC = FeedSpec(
    name="kite",
    build=build,
    startup=startup,
    decode=decode,
    instruments=instruments,
    history=history,
    quotes=quotes,
)
