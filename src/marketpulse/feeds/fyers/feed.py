"""The Fyers feed as the service sees it: build, start-up subscriptions, replay, instrument
master, history.

Fyers' provider token is the Fyers symbol (``NSE:SBIN-EQ``), so ``SUBSCRIBE`` resolves through
the instrument master that ``marketpulse instruments sync --provider fyers`` fills (or names
Fyers symbols directly); the adapter turns those into data-socket topics itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.fyers import wire
from marketpulse.feeds.fyers.client import FyersAdapter
from marketpulse.feeds.fyers.instruments import parse_master
from marketpulse.feeds.fyers.rest import (
    RESOLUTIONS,
    FyersApiError,
    FyersRestClient,
    history_chunks,
    quote_tick,
)
from marketpulse.feeds.history import HistoryRequest, HistoryUnavailableError
from marketpulse.feeds.http import download
from marketpulse.feeds.quotes import http_quote_errors
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.model import Candle, Tick
from marketpulse.store.instruments import InstrumentRecord, ParsedMaster, Progress
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)


class FyersSetupError(FeedError):
    """The Fyers feed is not configured well enough to start; the message says what to set."""


def build(settings: Settings) -> FeedAdapter:
    return FyersAdapter.from_settings(settings)


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` resolved through the instrument master, in ``SUBSCRIBE_MODE``."""
    if not settings.subscribe:
        raise FyersSetupError(
            "fyers: nothing to stream; set SUBSCRIBE to symbols such as "
            "SUBSCRIBE=SBIN.NSE,NIFTY50.NSE_INDEX (after `marketpulse instruments sync "
            "--provider fyers`) or to Fyers symbols such as NSE:SBIN-EQ"
        )
    return await resolver(adapter.name, settings.subscribe)


class ReplayDecoder:
    """Decodes a capture frame by frame. Fyers updates only make sense against the snapshot
    before them, so this keeps one :class:`~.wire.HsmState`; the auth response that starts
    every captured connection resets it. Without the live subscriptions, ticks take their
    token from the snapshot's strings and their mode from the capture (depth → ``full``, lite
    records → ``ltp``, else ``quote``)."""

    def __init__(self) -> None:
        self.state = wire.HsmState()

    def __call__(self, frame: bytes | str, ts_recv: int) -> list[Tick]:
        if isinstance(frame, str):
            return []
        return wire.decode_frame(frame, ts_recv, self.state).ticks


async def instruments(settings: Settings, progress: Progress | None) -> list[InstrumentRecord]:
    """Download every ``FYERS_MASTER_FILES`` symbol master (public) and map the rows."""
    parsed = ParsedMaster()
    base = settings.fyers_public_url.rstrip("/")
    for name in settings.fyers_master_files:
        raw = await download(f"{base}/sym_details/{name}.csv", progress)
        parse_master(raw.decode("utf-8", errors="replace"), parsed)
    log.info("fyers symbol masters: %s", parsed.summary())
    return parsed.records


async def history(settings: Settings, request: HistoryRequest) -> AsyncIterator[list[Candle]]:
    """``/data/history`` in the spans each resolution allows, one page per request."""
    symbol = request.instrument.token
    if ":" not in symbol:
        raise HistoryUnavailableError(f"fyers: {symbol!r} is not a Fyers symbol (NSE:SBIN-EQ)")
    resolution = RESOLUTIONS[request.interval]
    async with FyersRestClient.from_settings(settings) as client:
        for first, last in history_chunks(request.start, request.end, resolution):
            rows = await client.history(symbol, resolution, first, last)
            yield [
                Candle(request.instrument.symbol, request.interval,
                       datetime.fromtimestamp(row[0], UTC), row[1], row[2], row[3], row[4],
                       int(row[5]) if len(row) > 5 else 0, status="reconciled")
                for row in rows
            ]  # fmt: skip


async def quotes(settings: Settings, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """``/data/quotes`` for Fyers tickers (``NSE:SBIN-EQ``), 50 a request."""
    by_ticker = {i.token: i for i in instruments}
    with http_quote_errors(FyersApiError):
        async with FyersRestClient.from_settings(settings) as client:
            answered = await client.quotes(list(by_ticker))
    now = time.time_ns()
    ticks = []
    for quote in answered:
        asked = by_ticker.get(quote.n)
        if asked is not None and quote.s == "ok":
            ticks.append(quote_tick(quote, asked.exchange, now, asked.symbol))
    return ticks


SPEC = FeedSpec(
    name="fyers",
    build=build,
    startup=startup,
    decode=ReplayDecoder(),
    instruments=instruments,
    history=history,
    quotes=quotes,
)
