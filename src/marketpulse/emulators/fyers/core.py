"""The emulated Fyers back end: accounts, the market, live data-socket connections, faults.

One :class:`FyersEmulator` per app holds what the WebSocket and REST handlers share. The
simulator generates every instrument in ``full`` at ``ticks_per_second``; each tick is kept as
the instrument's latest state (what ``/data/quotes`` answers) and offered to every connection.
A connection's :class:`TopicPublisher` (pure) turns ticks into records for the topics it
subscribed: a snapshot when a topic is subscribed, then updates carrying only the positions that
changed (``0x80000000`` elsewhere), or lite records on a lite channel — and it keeps exactly the
values a correct client must hold, which is what the merge tests compare against.
"""

from __future__ import annotations

import base64
import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from marketpulse.emulators.fyers.listing import FyersListing, Listing
from marketpulse.emulators.market_loop import MarketEmulator
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.outbox import QueuedConnection
from marketpulse.feeds.fyers import wire
from marketpulse.feeds.simulator import default_universe
from marketpulse.feeds.simulator.trading_calendar import ist_date
from marketpulse.model import Tick

TEST_APP_ID: Final = "TESTAPP001-100"
"""Shaped like real app ids (ten characters + ``-100``): the SDK base64-decodes the
``APP_ID:JWT`` header part with the prefix in it, which only works for such lengths."""
TEST_SECRET: Final = "test_secret_key"
TEST_HSM_KEY: Final = "test_hsm_key_0123456789"
TEST_AUTH_CODE_PREFIX: Final = "test_auth_code"
ACK_COUNT: Final = 10
SYMBOL_LIMIT: Final = 5000
OUTBOX_FRAMES: Final = 1000
MAX_MESSAGE_BYTES: Final = 60_000
PRECISION: Final = 2
MULTIPLIER: Final = 1
DIVISOR: Final = float(10**PRECISION * MULTIPLIER)


def make_token(hsm_key: str, expires_at: float, **claims: object) -> str:
    """An (unsigned) access-token JWT with the claims the data socket reads (spec §1.2)."""

    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    payload = {"iss": "api.fyers.in", "iat": int(time.time()), "exp": int(expires_at),
               "sub": "access_token", "hsm_key": hsm_key, "fy_id": "XT00001", **claims}  # fmt: skip
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


def values_for(topic: str, tick: Tick) -> list[int]:
    kind = topic[:2]
    if kind == "if":
        return wire.index_values(tick, DIVISOR)
    if kind == "dp":
        return wire.depth_values(tick, DIVISOR)
    return wire.scrip_values(tick, DIVISOR)


class TopicPublisher:
    """One connection's topics and the values it last sent for each (pure; no I/O)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.sent: dict[str, list[int]] = {}
        self._next_id = 1

    def subscribe(self, topic: str, listing: Listing, tick: Tick | None) -> wire.Snapshot | None:
        """Start ``topic``; its snapshot (if the instrument has a state yet)."""
        if topic not in self.ids:
            self.ids[topic] = self._next_id
            self._next_id = self._next_id % 0xFFFF + 1
        if tick is None:
            return None
        values = values_for(topic, tick)
        self.sent[topic] = values
        return wire.Snapshot(
            self.ids[topic], topic, tuple(values), MULTIPLIER, PRECISION, listing.segment,
            topic.split("|", 2)[2], listing.symbol.partition(":")[2],
        )  # fmt: skip

    def unsubscribe(self, topic: str) -> None:
        self.ids.pop(topic, None)
        self.sent.pop(topic, None)

    def record(self, topic: str, listing: Listing, tick: Tick, lite: bool) -> wire.Record | None:
        """What to send for ``tick`` on ``topic``: a snapshot for a topic without one, else an
        update (changed positions only) or a lite record; ``None`` when nothing changed."""
        previous = self.sent.get(topic)
        if previous is None:
            return self.subscribe(topic, listing, tick)
        current = values_for(topic, tick)
        topic_id = self.ids[topic]
        if lite:
            if current[0] == previous[0] or topic[:2] == "dp":
                return None
            previous[0] = current[0]
            return wire.Lite(topic_id, current[0])
        changes = wire.update_values(previous, current)
        if changes is None:
            return None
        self.sent[topic] = wire.merge(previous, changes)
        return wire.Update(topic_id, changes)


@dataclass(slots=True)
class ConnectionLog:
    """What one data-socket connection did, kept after it closes (tests, diagnostics)."""

    opened_at: float
    authenticated: bool = False
    source: str = ""
    requests: list[wire.ClientRequest] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    lite_channels: set[int] = field(default_factory=set)
    acks: list[int] = field(default_factory=list)
    pings: int = 0
    errors_sent: list[str] = field(default_factory=list)
    messages_sent: int = 0
    frames_dropped: int = 0
    closed: str | None = None


class EmulatedConnection(QueuedConnection[bytes, ConnectionLog]):
    """One client's server side: auth state, channels, topics, outbox and message numbers."""

    def __init__(self, emulator: FyersEmulator) -> None:
        super().__init__(emulator.faults, ConnectionLog(time.monotonic()), OUTBOX_FRAMES)
        self.emulator = emulator
        self.publisher = TopicPublisher()
        self.channels: dict[str, int] = {}  # topic → channel
        self.paused: set[int] = set()
        self.number = 0

    # ------------------------------------------------------------------ client requests

    def handle(self, data: bytes) -> None:
        """Apply one client frame (spec §8); a malformed one gets a custom error message."""
        try:
            request = wire.decode_client_frame(data)
            self.log.requests.append(request)
            self._apply(request)
        except wire.WireError as exc:
            self.send_error(11002, f"malformed request: {exc}", None)

    def _apply(self, request: wire.ClientRequest) -> None:
        kind = request.kind
        if kind == wire.PING:
            self.log.pings += 1
            return
        if kind == wire.AUTH:
            self.log.source = request.source
            ok = self.emulator.hsm_key_accepted(request.hsm_key)
            self.log.authenticated = ok
            self._queue(wire.encode_auth_response(ok, self.emulator.ack_count if ok else 0))
            if not ok:
                self.close(1008, "authentication failed")
            return
        if kind == wire.ACK:
            self.log.acks.append(request.message_number)
            return
        if not self.log.authenticated:
            self.send_error(11002, "not authenticated: send the auth request first", kind)
            return
        if kind == wire.MODE:
            lite = request.lite
            for channel in request.channels:
                if lite:
                    self.log.lite_channels.add(channel)
                else:
                    self.log.lite_channels.discard(channel)
            self._queue(wire.encode_status(wire.MODE, True))
        elif kind in (wire.PAUSE, wire.RESUME):
            channels = request.channels
            if kind == wire.PAUSE:
                self.paused.update(channels)
            else:
                self.paused.difference_update(channels)
            self._queue(wire.encode_status(kind, True))
        elif kind == wire.SUBSCRIBE:
            self._subscribe(request.topics, request.channel)
        elif kind == wire.UNSUBSCRIBE:
            for topic in request.topics:
                self.channels.pop(topic, None)
                self.publisher.unsubscribe(topic)
            self.log.topics = list(self.channels)
            self._queue(wire.encode_status(wire.UNSUBSCRIBE, True))
        else:
            self.send_error(11002, f"unsupported request type {kind}", kind)

    def _subscribe(self, topics: list[str], channel: int) -> None:
        emulator = self.emulator
        if len(topics) > wire.MAX_TOPICS_PER_FRAME:
            self._queue(wire.encode_status(wire.SUBSCRIBE, False))
            return
        known = [t for t in dict.fromkeys(topics) if t in emulator.listing.by_topic]
        symbols = {_instrument_of(t) for t in self.channels}
        accepted: list[str] = []
        refused = 0
        for topic in known:
            instrument = _instrument_of(topic)
            if instrument not in symbols and len(symbols) >= emulator.symbol_limit:
                refused += 1
                continue
            symbols.add(instrument)
            accepted.append(topic)
        self._queue(wire.encode_status(wire.SUBSCRIBE, True))
        if refused:
            self.send_error(
                wire.SYMBOL_LIMIT_CODE,
                f"Symbol limit exceeded for your plan: at most {emulator.symbol_limit} symbols; "
                f"{refused} topic(s) not subscribed",
                wire.SUBSCRIBE,
            )
        records: list[wire.Record] = []
        for topic in accepted:
            self.channels[topic] = channel
            listing = emulator.listing.by_topic[topic]
            snapshot = self.publisher.subscribe(topic, listing, emulator.last.get(listing.symbol))
            if snapshot is not None:
                records.append(snapshot)
        self.log.topics = list(self.channels)
        self._send_records(records)

    # ------------------------------------------------------------------ server → client

    def offer(self, ticks: Iterable[tuple[Listing, Tick]]) -> None:
        """Queue the records of ``ticks`` for the topics this client subscribed."""
        if not self.channels:
            return
        records: list[wire.Record] = []
        publisher = self.publisher
        lite_channels = self.log.lite_channels
        for listing, tick in ticks:
            for topic in (listing.scrip_topic, listing.depth_topic):
                if topic is None:
                    continue
                channel = self.channels.get(topic)
                if channel is None or channel in self.paused:
                    continue
                record = publisher.record(topic, listing, tick, channel in lite_channels)
                if record is not None:
                    records.append(record)
        self._send_records(records)

    def _send_records(self, records: list[wire.Record]) -> None:
        batch: list[wire.Record] = []
        size = 0
        for record in records:
            encoded = len(wire.encode_record(record))
            if batch and size + encoded > MAX_MESSAGE_BYTES:
                self._send_data(batch)
                batch, size = [], 0
            batch.append(record)
            size += encoded
        if batch:
            self._send_data(batch)

    def _send_data(self, records: list[wire.Record]) -> None:
        self.number += 1
        self._queue(wire.encode_data(self.number, records))

    def send_error(self, code: int, message: str, ref_type: int | None) -> None:
        self.log.errors_sent.append(f"{code}: {message}")
        self._queue(wire.encode_custom(code, message, ref_type))


def _instrument_of(topic: str) -> str:
    """``sf|nse_cm|3045`` and ``dp|nse_cm|3045`` are one symbol for the symbol limit."""
    return topic[3:]


class FyersEmulator(MarketEmulator[EmulatedConnection, ConnectionLog]):
    """Shared state of one emulated Fyers deployment (see the module docstring)."""

    name = "fyers"
    last: dict[str, Tick]

    def __init__(
        self,
        options: EmulatorOptions,
        *,
        ack_count: int = ACK_COUNT,
        symbol_limit: int = SYMBOL_LIMIT,
        hsm_key: str = TEST_HSM_KEY,
        token_lifetime: float = 86400.0,
        slice_seconds: float = 0.05,
    ) -> None:
        super().__init__(options, slice_seconds=slice_seconds)
        self.ack_count = ack_count
        self.symbol_limit = symbol_limit
        self.hsm_key = hsm_key
        self.token_lifetime = token_lifetime
        universe = default_universe(ist_date(options.clock()), options.extra_instruments)
        self.listing = FyersListing(universe)
        self.rest_requests: list[str] = []
        self.rest_faults: deque[int] = deque()
        self.used_auth_codes: set[str] = set()
        self._start_market(universe)

    # ------------------------------------------------------------------ accounts

    def access_token(self) -> str:
        return make_token(self.hsm_key, self.options.clock() + self.token_lifetime)

    def hsm_key_accepted(self, hsm_key: str) -> bool:
        return hsm_key == self.hsm_key and not self.faults.token_expired()

    def token_problem(self, token: str) -> str | None:
        """Why a REST access token is refused, or ``None``."""
        from marketpulse.credentials import CredentialsError
        from marketpulse.feeds.fyers.credentials import token_claims

        try:
            claims = token_claims(token)
        except CredentialsError:
            return "Could not authenticate the user"
        if claims.hsm_key != self.hsm_key or self.faults.token_expired():
            return "Your token has expired. Please generate a token"
        if claims.expires_at is not None and self.options.clock() >= claims.expires_at:
            return "Your token has expired. Please generate a token"
        return None

    def open_connection(self) -> EmulatedConnection:
        return self._register(EmulatedConnection(self))

    # ------------------------------------------------------------------ market

    def _own_tick(self, tick: Tick) -> Tick:
        item = self.listing.by_sim_token[tick.token]
        return msgspec.structs.replace(tick, source="fyers", token=item.symbol, symbol=None)

    def _keep(self, tick: Tick) -> tuple[Listing, Tick]:
        """Ticks are kept by Fyers symbol and fanned out with their listing (its topics)."""
        item = self.listing.by_symbol[tick.token]
        self.last[item.symbol] = tick
        return item, tick
