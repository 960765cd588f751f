"""Angel One as a registered feed: build, start-up subscriptions, replay, instrument master."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import msgspec

from marketpulse.config import Settings
from marketpulse.feeds.angelone import market_data, master, rest, wire
from marketpulse.feeds.angelone.client import AngelOneAdapter
from marketpulse.feeds.angelone.instruments import keys_for
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.history import HistoryRequest
from marketpulse.feeds.http import download
from marketpulse.feeds.quotes import QuoteProviderDownError, QuoteRateLimitedError
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.model import Candle, Tick
from marketpulse.store.instruments import InstrumentRecord, Progress
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)


class NothingToStreamError(RuntimeError):
    """``SUBSCRIBE`` is empty: a broker feed has no default universe to stream.

    A ``RuntimeError`` so that ``marketpulse serve`` reports it as a one-line error.
    """


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` (and ``SYMBOLS_FILE``; symbols or Angel tokens) resolved through the
    instrument master.

    The resolved entries teach the adapter each token's segment (and which are indices);
    a token listed in two segments gets an ``EXCHANGE|TOKEN`` key (see :mod:`.instruments`).
    """
    if not settings.subscribe:
        raise NothingToStreamError(
            "angelone: nothing to stream; set SUBSCRIBE (or SYMBOLS_FILE) to symbols or Angel "
            "tokens, e.g. SUBSCRIBE=RELIANCE.NSE,NIFTY50.NSE_INDEX (after `marketpulse "
            "instruments sync --provider angelone`)"
        )
    tracked = keys_for(await resolver(adapter.name, settings.subscribe))
    adapter.track(tracked)
    return tracked


def decode(frame: bytes | str, ts_recv: int) -> list[Tick]:
    """One raw frame of a capture → ticks (``pong`` and other text frames carry none).

    Pure: without the instrument master, indices keep the wire's ``NSE``/``BSE`` and ticks have
    no symbol, exactly as ``record --tokens`` wrote them.
    """
    if isinstance(frame, str):
        return []
    out = wire.decode_one(frame, ts_recv)
    return [out] if isinstance(out, Tick) else []


async def instruments(
    settings: Settings, progress: Progress | None = None
) -> list[InstrumentRecord]:
    """Download ``ANGELONE_SCRIP_MASTER_URL`` (no login needed) and map it to canonical rows."""
    raw = await download(settings.angelone_scrip_master_url, progress)
    try:
        parsed = master.parse_master(raw)
    except ValueError as exc:
        raise FeedError(str(exc)) from exc
    log.info("angelone instrument master: %s", parsed.summary())
    return parsed.records


async def history(settings: Settings, request: HistoryRequest) -> AsyncIterator[list[Candle]]:
    """``getCandleData`` in the windows each interval allows, one page per request."""
    interval = market_data.Interval.parse(request.interval)
    instrument = request.instrument
    token = instrument.token.rpartition("|")[2]  # a qualified EXCHANGE|TOKEN key
    # SmartAPI's windows are inclusive to the minute; ours end before ``end``.
    last = request.end - timedelta(minutes=1)
    async with rest.SmartApiClient.from_settings(settings) as client:
        for window_start, window_end in market_data.plan_chunks(request.start, last, interval):
            body = market_data.candle_body(
                instrument.exchange, token, interval, window_start, window_end
            )
            data = await client.post(rest.CANDLE_PATH, body, family="history")
            yield [
                msgspec.structs.replace(candle, status="reconciled")
                for candle in market_data.parse_candles(data, instrument.symbol, interval)
            ]


async def quotes(settings: Settings, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """``/market/v1/quote`` in FULL mode, 50 tokens a request."""
    by_key = {(i.exchange, i.token): i for i in instruments}
    try:
        async with rest.SmartApiClient.from_settings(settings) as client:
            ticks, _ = await client.quotes(list(by_key))
    except rest.RateLimitedError as exc:
        raise QuoteRateLimitedError(str(exc)) from exc
    except rest.ServerError as exc:
        raise QuoteProviderDownError(str(exc)) from exc
    except rest.SmartApiError as exc:
        if exc.status == 0:  # unreachable after retries
            raise QuoteProviderDownError(str(exc)) from exc
        raise
    out = []
    for tick in ticks:
        asked = by_key.get((tick.exchange, tick.token))
        if asked is not None:
            out.append(msgspec.structs.replace(tick, symbol=asked.symbol))
    return out


SPEC = FeedSpec(
    name="angelone",
    build=AngelOneAdapter.from_settings,
    startup=startup,
    decode=decode,
    instruments=instruments,
    history=history,
    quotes=quotes,
)
