"""Paytm Money as a registered feed: build, start-up subscriptions, replay, instrument master,
REST quotes.

Start-up resolves ``SUBSCRIBE`` (canonical symbols, or Paytm keys such as ``NSE:2885:EQUITY``)
through the instrument master that ``marketpulse instruments sync --provider paytm`` fills.

History: ``SPEC.history`` is ``None``. The only candle endpoint (``/data/v1/price-charts/sym``,
spec §9) was removed from the Python SDK in 2023, its value formats are unknown and a large
integration states Paytm has no historical API, so backfill and gap repair use another provider.
"""

from __future__ import annotations

import logging

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedError
from marketpulse.feeds.http import download
from marketpulse.feeds.paytm import instruments as master
from marketpulse.feeds.paytm import wire
from marketpulse.feeds.paytm.client import PaytmAdapter
from marketpulse.feeds.paytm.rest import fetch_quotes
from marketpulse.feeds.registry import FeedSpec, Resolver
from marketpulse.model import Tick
from marketpulse.store.instruments import InstrumentRecord, Progress
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)


class PaytmSetupError(FeedError):
    """The Paytm feed is not configured well enough to start; the message says what to set."""


def build(settings: Settings) -> FeedAdapter:
    return PaytmAdapter.from_settings(settings)


async def startup(
    adapter: FeedAdapter, settings: Settings, resolver: Resolver
) -> list[TrackedSymbol]:
    """``SUBSCRIBE`` resolved through the instrument master, in ``SUBSCRIBE_MODE``."""
    if not settings.subscribe:
        raise PaytmSetupError(
            "paytm: nothing to stream; set SUBSCRIBE to symbols such as "
            "SUBSCRIBE=RELIANCE.NSE,NIFTY50.NSE_INDEX (after `marketpulse instruments sync "
            "--provider paytm`) or to Paytm keys such as NSE:2885:EQUITY"
        )
    tracked = await resolver(adapter.name, settings.subscribe)
    adapter.track(tracked)
    return tracked


_replay_book = wire.KeyBook()


def decode(frame: bytes | str, ts_recv: int) -> list[Tick]:
    """One raw frame of a capture → ticks, as the live connection produced them.

    Packets carry bare security ids; the connection records its own subscription messages in
    the capture (text frames), so replay learns each id's token from them, in order, across the
    calls of one process.
    """
    if isinstance(frame, str):
        _replay_book.learn(frame)
        return []
    return wire.decode_frame(frame, _replay_book.labels, ts_recv).ticks


async def instruments(settings: Settings, progress: Progress | None) -> list[InstrumentRecord]:
    """Download the security master CSV (no login needed) and map it to canonical records."""
    text = (await download(settings.paytm_security_master_url, progress)).decode("utf-8-sig")
    try:
        parsed = master.parse_master(text)
    except ValueError as exc:
        raise FeedError(str(exc)) from exc
    log.info("paytm instrument master: %s", parsed.summary())
    return parsed.records


SPEC = FeedSpec(
    name="paytm",
    build=build,
    startup=startup,
    decode=decode,
    instruments=instruments,
    quotes=fetch_quotes,
    history=None,
)
