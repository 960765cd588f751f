"""The emulated Dhan back end: the listing, the market, live feed sockets and faults.

One :class:`DhanEmulator` per app holds what the WebSocket and REST handlers share. The
simulator generates every instrument in ``full`` mode; each tick is re-keyed to its Dhan
``SEGMENT|ID`` key, kept as the latest state (what the quote endpoints answer) and offered to
every connection, which encodes the packets of the modes it subscribed with the feed's own wire
encoder — one packet per WebSocket message on the main feed (as the official SDK needs), bid and
ask packets stacked on the depth socket.

Security ids are numbered *per segment* from 1000, so ``NSE_EQ|1000``, ``IDX_I|1000`` and
``NSE_FNO|1000`` are three different instruments: anything that keyed by the bare id would mix
them up, which the tests would see.

Emulator checklist (spec §9): any path; bad credentials → accept, disconnect packet
(808/809/810, 807 after ``expire_token_after``), close; no subscribe ack; prev close then the
current state on subscribe, OI packets for derivatives in quote mode; ≤ 100 instruments per
message and ≤ ``max_instruments`` per connection (else 804 and close); a 6th connection of a
client id makes the *oldest* one get 805 and close; ``{"RequestCode": 12}`` closes, a trailing
binary frame is ignored; LTT in IST-as-UTC seconds (``ltt_offset``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import msgspec

from marketpulse.emulators.market_loop import MarketEmulator
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.outbox import CloseRequest, QueuedConnection
from marketpulse.feeds.dhan import wire
from marketpulse.feeds.dhan.instruments import ScripRow, encode_rows
from marketpulse.feeds.simulator import SimSpec, default_universe
from marketpulse.feeds.simulator.trading_calendar import ist_date
from marketpulse.model import DepthLevel, Tick, parse_derivative_name

log = logging.getLogger(__name__)

TEST_CLIENT_ID: Final = "1000000001"
TEST_ACCESS_TOKEN: Final = "test-dhan-access-token"
FIRST_SECURITY_ID: Final = 1000
OUTBOX_FRAMES: Final = 5000

_SEGMENT: Final = {("NSE", "EQ"): ("NSE", "E", "NSE_EQ"), ("BSE", "EQ"): ("BSE", "E", "BSE_EQ"),
                   ("NFO", "FUT"): ("NSE", "D", "NSE_FNO"),
                   ("NSE_INDEX", "INDEX"): ("NSE", "I", "IDX_I"),
                   ("BSE_INDEX", "INDEX"): ("BSE", "I", "IDX_I")}  # fmt: skip
_INDEX_NAMES: Final = {"NIFTY50": "NIFTY", "NIFTYBANK": "BANKNIFTY", "SENSEX": "SENSEX"}
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Listing:
    spec: SimSpec
    key: str
    row: ScripRow


def build_listing(specs: Iterable[SimSpec]) -> list[Listing]:
    """Scrip-master rows for the simulator's universe, ids numbered per segment."""
    next_id: dict[str, int] = {}
    out = []
    for spec in specs:
        inst = spec.instrument
        exch, seg, segment = _SEGMENT[(inst.exchange.value, inst.instrument_type)]
        ident = next_id.get(segment, FIRST_SECURITY_ID)
        next_id[segment] = ident + 1
        symbol, kind = inst.symbol, "EQUITY"
        if spec.is_index:
            symbol, kind = _INDEX_NAMES.get(inst.symbol, inst.symbol), "INDEX"
        elif inst.expiry is not None:
            parts = parse_derivative_name(inst.symbol)
            underlying = parts.underlying if parts else inst.symbol
            e = inst.expiry
            symbol = f"{underlying}-{_MONTHS[e.month - 1]}{e.year}-FUT"
            kind = "FUTIDX"
        series = "EQ" if kind == "EQUITY" else ""
        row = ScripRow(exch, seg, ident, kind, symbol, inst.lot_size, inst.name or inst.symbol,
                       inst.expiry, None, "XX", inst.tick_size, series)  # fmt: skip
        out.append(Listing(spec, wire.make_key(segment, ident), row))
    return out


@dataclass(slots=True)
class ConnectionLog:
    """What one socket did, kept after it closes (for tests and diagnostics)."""

    client_id: str
    depth: bool
    requests: list[wire.ClientRequest] = field(default_factory=list)
    modes: dict[str, set[str]] = field(default_factory=dict)
    disconnect_sent: int | None = None
    frames_sent: int = 0
    frames_dropped: int = 0
    closed: str | None = None


class EmulatedConnection(QueuedConnection[bytes, ConnectionLog]):
    """One client socket's server side: its subscriptions and its outbox."""

    def __init__(self, emulator: DhanEmulator, client_id: str, depth: bool) -> None:
        super().__init__(emulator.faults, ConnectionLog(client_id, depth), OUTBOX_FRAMES)
        self.emulator = emulator

    def handle(self, text: str) -> None:
        """Apply one client request; a malformed or over-limit one ends the connection."""
        try:
            request = wire.decode_client_message(text)
            keys = wire.keys_of(request.instruments)
        except ValueError as exc:
            log.info("dhan emulator: bad request %r: %s", text[:200], exc)
            self.disconnect(814)
            return
        self.log.requests.append(request)
        emulator = self.emulator
        code = request.code
        if code == wire.DISCONNECT_REQUEST:
            self.close(1000, "disconnect requested")
            return
        modes = self.log.modes
        depth = self.log.depth
        sub = {wire.DEPTH20: "depth"} if depth else wire.MODE_OF_CODE
        unsub = {c + 1: m for c, m in sub.items()}
        if code in sub:
            limit = emulator.max_depth_instruments if depth else emulator.max_instruments
            new = [k for k in dict.fromkeys(keys) if k not in modes]
            per_message = limit if depth else emulator.max_per_message
            if len(keys) > per_message or len(modes) + len(new) > limit:
                self.disconnect(804)
                return
            mode = sub[code]
            for key in keys:
                modes.setdefault(key, set()).add(mode)
            self._snapshot(keys, mode, fresh=set(new))
        elif code in unsub:
            for key in keys:
                held = modes.get(key)
                if held is not None:
                    held.discard(unsub[code])
                    if not held:
                        del modes[key]
        else:
            log.info("dhan emulator: ignoring request code %d", code)

    def _snapshot(self, keys: list[str], mode: str, fresh: set[str]) -> None:
        last = self.emulator.last
        for key in keys:
            tick = last.get(key)
            if tick is None:
                continue
            if key in fresh and not self.log.depth:
                self._queue(wire.encode_prev_close(key, tick.close or 0.0, 0))
            self._queue_tick(key, tick, {mode})

    def offer(self, keyed: Iterable[tuple[str, Tick]]) -> None:
        modes = self.log.modes
        if not modes:
            return
        for key, tick in keyed:
            held = modes.get(key)
            if held:
                self._queue_tick(key, tick, held)

    def _queue_tick(self, key: str, tick: Tick, modes: set[str]) -> None:
        emulator = self.emulator
        if "depth" in modes:
            bids, asks = emulator.book20(key, tick)
            self._queue(wire.encode_depth20(key, bids, asks))
            return
        offset = emulator.ltt_offset
        for mode in ("ltp", "quote", "full"):
            if mode in modes:
                shaped = tick if tick.mode == mode else msgspec.structs.replace(tick, mode=mode)
                self._queue(wire.encode_tick(shaped, ltt_offset=offset))
                if mode == "quote" and tick.oi is not None:
                    self._queue(wire.encode_oi(key, tick.oi))

    def disconnect(self, reason: int) -> None:
        """Send Dhan's disconnect packet, then close."""
        self.log.disconnect_sent = reason
        packet = wire.encode_depth_disconnect(reason) if self.log.depth else None
        self._make_room(2)
        self.outbox.put_nowait(packet or wire.encode_disconnect(reason))
        self.outbox.put_nowait(CloseRequest(1000, wire.describe_disconnect(reason)[:120]))
        self.log.closed = f"disconnect {reason}"


class DhanEmulator(MarketEmulator[EmulatedConnection, ConnectionLog]):
    """Shared state of one emulated Dhan deployment (see the module docstring)."""

    name = "dhan"
    last: dict[str, Tick]

    def __init__(
        self,
        options: EmulatorOptions,
        *,
        max_instruments: int = 5000,
        max_depth_instruments: int = 50,
        max_per_message: int = wire.MAX_PER_MESSAGE,
        max_connections: int = 5,
        ltt_offset: int = wire.IST_OFFSET_SECONDS,
        snapshots: bool = True,
        slice_seconds: float = 0.05,
        today: date | None = None,
        ping_interval: float = 10.0,
        ping_timeout: float = 30.0,
    ) -> None:
        super().__init__(options, slice_seconds=slice_seconds)
        # Dhan pings every 10 s and drops a socket that stays silent (no pong, no data) for
        # 40 s (spec §9.5); the ASGI server sends the pings (see ``server_options``).
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_instruments = max_instruments
        self.max_depth_instruments = max_depth_instruments
        self.max_per_message = max_per_message
        self.max_connections = max_connections
        self.ltt_offset = ltt_offset
        self.snapshots = snapshots
        universe = default_universe(today or ist_date(options.clock()), options.extra_instruments)
        self.listings = build_listing(universe.specs)
        self.by_key = {item.key: item for item in self.listings}
        self._key_of_sim = {item.spec.token: item.key for item in self.listings}
        self.rejected: list[int] = []
        self.rest_requests: list[str] = []
        self._start_market(universe)

    # ------------------------------------------------------------------ accounts

    def access_problem(self, client_id: str | None, token: str | None) -> int | None:
        """The disconnect reason for these credentials, or ``None`` if they are accepted."""
        if client_id != TEST_CLIENT_ID:
            return 810 if token == TEST_ACCESS_TOKEN else 808
        if token != TEST_ACCESS_TOKEN:
            return 809
        if self.faults.token_expired():
            return 807
        return None

    def open_connection(self, client_id: str, depth: bool) -> EmulatedConnection:
        """Register a socket; beyond ``max_connections`` the oldest one gets 805."""
        connection = EmulatedConnection(self, client_id, depth)
        mine = [
            c for c in self.connections if c.log.client_id == client_id and c.log.closed is None
        ]
        if len(mine) >= self.max_connections:
            mine[0].disconnect(805)
        return self._register(connection)

    # ------------------------------------------------------------------ market

    def _own_tick(self, tick: Tick) -> Tick:
        key = self._key_of_sim[tick.token]
        return msgspec.structs.replace(tick, source="dhan", token=key, symbol=None)

    def book20(self, key: str, tick: Tick) -> tuple[list[DepthLevel], list[DepthLevel]]:
        """A 20-level book extending the tick's 5 levels outwards on the tick grid."""
        item = self.by_key.get(key)
        step = item.spec.instrument.tick_size if item else 0.05
        bids = list(tick.bids or [DepthLevel(tick.ltp - step, 100, 1)])
        asks = list(tick.asks or [DepthLevel(tick.ltp + step, 100, 1)])
        while len(bids) < 20:
            last = bids[-1]
            bids.append(DepthLevel(round(last.price - step, 2), last.qty + 10, last.orders + 1))
        while len(asks) < 20:
            last = asks[-1]
            asks.append(DepthLevel(round(last.price + step, 2), last.qty + 10, last.orders + 1))
        return bids[:20], asks[:20]

    def disconnect_all(self, reason: int) -> None:
        for connection in list(self.connections):
            connection.disconnect(reason)

    def token_expired(self) -> None:
        log.info("dhan emulator: the access token expired; sending 807 to every socket")
        self.disconnect_all(807)

    def scrip_master(self) -> str:
        return encode_rows(item.row for item in self.listings)
