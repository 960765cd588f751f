"""The emulated Yahoo back end: the listing, the market, streamer sockets and faults.

One :class:`YahooEmulator` per app holds what the WebSocket and chart handlers share. The listing
is the simulator's NSE equities (``X.NS``) and indices (``^NSEI``, ``^NSEBANK``, ``^BSESN``) plus
two global instruments (``AAPL`` on Nasdaq, ``BTC-USD``) so that exchange codes and symbol
mapping are exercised; futures are left out (Yahoo does not stream NSE futures). The simulator
generates every instrument; each tick is re-keyed to its Yahoo id, kept as the latest state (what
the on-subscribe snapshot and the chart ``meta`` answer) and offered to every socket that
subscribed it, encoded with the feed's own wire encoder.

Emulator checklist (spec Part C): any path and query; no auth; ``{"subscribe"|"unsubscribe":
[...]}`` handled, ``{}`` and empty lists ignored; at most ``max_symbols`` (100) distinct symbols
per connection, cumulative, extra ones silently dropped, unsubscribing frees slots; a malformed
client message closes the socket without a status code (1005); a snapshot of each newly
subscribed symbol right away; ``time`` in whole seconds (ms); ``?version=2`` gets the JSON
envelope, any other query the legacy bare base64 frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, time
from typing import Final

import msgspec

from marketpulse.emulators.market_loop import MarketEmulator
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.outbox import QueuedConnection
from marketpulse.feeds.simulator import SimSpec, Universe, default_universe
from marketpulse.feeds.simulator.trading_calendar import ist_date
from marketpulse.feeds.simulator.universe import token_for
from marketpulse.feeds.yahoo import wire
from marketpulse.feeds.yahoo.symbols import CODE_OF_EXCHANGE, to_yahoo
from marketpulse.model import Exchange, Instrument, Tick

log = logging.getLogger(__name__)

OUTBOX_FRAMES: Final = 5000
MAX_SYMBOLS: Final = 100
TEST_CRUMB: Final = "emulated-crumb"
COOKIE_NAME: Final = "A3"


@dataclass(frozen=True, slots=True)
class Venue:
    """Where a listing trades: its zone and session (for chart timestamps and meta)."""

    zone: str
    abbreviation: str
    gmtoffset: int
    open: time
    currency: str
    full_name: str


_INDIA: Final = Venue("Asia/Kolkata", "IST", 19_800, time(9, 15), "INR", "NSE")
_VENUES: Final[dict[Exchange, Venue]] = {
    Exchange.NSE: _INDIA,
    Exchange.NSE_INDEX: _INDIA,
    Exchange.BSE: Venue("Asia/Kolkata", "IST", 19_800, time(9, 15), "INR", "BSE"),
    Exchange.BSE_INDEX: Venue("Asia/Kolkata", "IST", 19_800, time(9, 15), "INR", "BSE"),
    Exchange.NASDAQ: Venue("America/New_York", "EST", -18_000, time(9, 30), "USD", "NasdaqGS"),
    Exchange.CRYPTO: Venue("UTC", "UTC", 0, time(0, 0), "USD", "CCC"),
}
_GLOBAL: Final = (
    (Instrument(symbol="AAPL", exchange=Exchange.NASDAQ, name="Apple Inc.", tick_size=0.01),
     230.0, 50_000_000),
    (Instrument(symbol="BTC-USD", exchange=Exchange.CRYPTO, name="Bitcoin USD", tick_size=0.01),
     94_000.0, 30_000),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument as Yahoo knows it."""

    spec: SimSpec
    yahoo_id: str
    exchange_code: str
    quote_type: int
    venue: Venue
    short_name: str

    @property
    def is_equity(self) -> bool:
        return self.quote_type == wire.EQUITY


def build_universe(today: date, extra_instruments: int = 0) -> Universe:
    """The simulator's universe without futures, plus the global instruments."""
    base = default_universe(today, extra_instruments)
    specs = [s for s in base.specs if s.instrument.instrument_type != "FUT"]
    for instrument, close, volume in _GLOBAL:
        specs.append(SimSpec(token_for(instrument.canonical), instrument, close, volume))
    return Universe(specs)


def build_listing(specs: Iterable[SimSpec]) -> list[Listing]:
    out = []
    for spec in specs:
        inst = spec.instrument
        kind = (
            wire.INDEX if spec.is_index
            else wire.CRYPTOCURRENCY if inst.exchange is Exchange.CRYPTO else wire.EQUITY
        )  # fmt: skip
        short = (inst.name or inst.symbol).upper() if kind != wire.INDEX else inst.name or ""
        out.append(Listing(spec, to_yahoo(spec.symbol), CODE_OF_EXCHANGE[inst.exchange], kind,
                           _VENUES[inst.exchange], short))  # fmt: skip
    return out


@dataclass(slots=True)
class ConnectionLog:
    """What one socket did, kept after it closes (for tests and diagnostics)."""

    query: str
    legacy: bool
    messages: list[str] = field(default_factory=list)
    symbols: dict[str, None] = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)  # every symbol that took a slot
    dropped: list[str] = field(default_factory=list)  # beyond the cap
    frames_sent: int = 0
    frames_dropped: int = 0
    closed: str | None = None


class EmulatedConnection(QueuedConnection[str, ConnectionLog]):
    """One client socket's server side: its subscriptions and its outbox."""

    def __init__(self, emulator: YahooEmulator, query: str, legacy: bool) -> None:
        super().__init__(emulator.faults, ConnectionLog(query, legacy), OUTBOX_FRAMES)
        self.emulator = emulator

    def handle(self, text: str) -> None:
        """Apply one client frame; a malformed one closes the socket without a status code."""
        self.log.messages.append(text)
        try:
            requests = wire.decode_client_message(text)
        except ValueError as exc:
            log.info("yahoo emulator: closing on a malformed message %r: %s", text[:200], exc)
            self.close(None, "")
            return
        symbols = self.log.symbols
        counted = self.log.counted
        for request in requests:
            if request.action == "unsubscribe":
                for symbol in request.symbols:
                    if symbol in symbols:
                        del symbols[symbol]
                        counted.discard(symbol)
                continue
            fresh = []
            for symbol in request.symbols:
                if symbol in symbols:
                    continue
                if len(counted) >= self.emulator.max_symbols:
                    self.log.dropped.append(symbol)
                    continue
                counted.add(symbol)  # unknown symbols take a slot too (spec §A2)
                symbols[symbol] = None
                fresh.append(symbol)
            if self.emulator.snapshots:
                self._snapshot(fresh)

    def _snapshot(self, symbols: list[str]) -> None:
        last = self.emulator.last
        for symbol in symbols:
            tick = last.get(symbol)
            if tick is not None:
                self._queue(self.emulator.frame(symbol, tick, self.log.legacy))

    def offer(self, keyed: Iterable[tuple[str, Tick]]) -> None:
        symbols = self.log.symbols
        if not symbols:
            return
        legacy = self.log.legacy
        frame = self.emulator.frame
        for symbol, tick in keyed:
            if symbol in symbols:
                self._queue(frame(symbol, tick, legacy))

    def close(self, code: int | None, reason: str) -> None:
        self.log.closed = reason or f"code {code}"
        self._queue_close(code, reason)


class YahooEmulator(MarketEmulator[EmulatedConnection, ConnectionLog]):
    """Shared state of one emulated Yahoo deployment (see the module docstring)."""

    name = "yahoo"
    last: dict[str, Tick]

    def __init__(
        self,
        options: EmulatorOptions,
        *,
        max_symbols: int = MAX_SYMBOLS,
        snapshots: bool = True,
        require_crumb: bool = False,
        slice_seconds: float = 0.05,
        today: date | None = None,
    ) -> None:
        super().__init__(options, slice_seconds=slice_seconds)
        self.max_symbols = max_symbols
        self.snapshots = snapshots
        self.require_crumb = require_crumb
        universe = build_universe(today or ist_date(options.clock()), options.extra_instruments)
        self.listings = build_listing(universe.specs)
        self.by_id = {item.yahoo_id: item for item in self.listings}
        self._id_of_sim = {item.spec.token: item.yahoo_id for item in self.listings}
        self.chart_requests: list[str] = []
        self.crumb_requests = 0
        self.rate_limit_next = 0
        """The next N chart requests get HTTP 429 (rate-limit tests)."""
        self.crumb = TEST_CRUMB
        self._start_market(universe)

    def open_connection(self, query: str, legacy: bool) -> EmulatedConnection:
        return self._register(EmulatedConnection(self, query, legacy))

    # ------------------------------------------------------------------ market

    def _own_tick(self, tick: Tick) -> Tick:
        ident = self._id_of_sim[tick.token]
        return msgspec.structs.replace(tick, source="yahoo", token=ident, mode="quote",
                                       bids=None, asks=None)  # fmt: skip

    def frame(self, yahoo_id: str, tick: Tick, legacy: bool = False) -> str:
        """The server frame carrying ``tick`` for ``yahoo_id``."""
        item = self.by_id.get(yahoo_id)
        message = wire.pricing_of_tick(
            tick, yahoo_id=yahoo_id,
            exchange_code=item.exchange_code if item else "",
            quote_type=item.quote_type if item else wire.EQUITY,
            currency=item.venue.currency if item else "",
            short_name=item.short_name if item else "",
        )  # fmt: skip
        return wire.encode_frame(message, legacy=legacy)

    def token_expired(self) -> None:
        """Nothing expires: Yahoo has no tokens."""
