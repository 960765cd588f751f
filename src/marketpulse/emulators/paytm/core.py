"""The emulated Paytm Money back end: listing, tokens, the market, broadcast sockets, faults.

One :class:`PaytmEmulator` per app holds what the WebSocket and REST handlers share. The
simulator generates every instrument in full mode; each tick is re-keyed to its Paytm key
(``NSE:2885:EQUITY``), kept as the latest state (what the live-price API answers) and offered to
every socket, which encodes the packets of the modes it subscribed with the feed's own encoder,
**all packets of one offer concatenated in one binary frame** (spec §4: no length prefix).

Ids follow the real numbering's trap: NIFTY 50 is index 13 and the 13th NSE equity is also
id 13 (as NSE's ABB token is), so anything that keyed by the bare id would mix an index and an
equity up; the tests would see it.

Emulator checklist (spec §13): path ``/broadcast/user/v1/data``, token from ``x_jwt_token``;
unknown/expired tokens refused with HTTP 401 before the upgrade; JSON-array preferences,
whitespace-tolerant; subscriptions per socket keyed by (exchange, scrip type, id) — the §13 text
says (exchange, id), which cannot hold index 13 and equity 13 at once — with their mode; REMOVE
deletes, a second ADD changes the mode; data only for subscribed ids, type from scripType ×
modeType, ``mode`` byte = type, ``tradable`` 0 for indices, 1980-epoch times. Choices where the
spec is silent: on ADD the current state is sent at once; over ``max_instruments`` per socket a
text frame says so and the extra instruments are ignored; beyond ``max_connections`` sockets per
token the handshake gets HTTP 429; when the token expires (``expire_token_after``) live sockets
are closed with 1008 and new handshakes get 401.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final

import msgspec

from marketpulse.emulators.market_loop import MarketEmulator
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.outbox import QueuedConnection
from marketpulse.feeds.paytm import wire
from marketpulse.feeds.paytm.auth import TOKEN_DEATH
from marketpulse.feeds.paytm.instruments import ScripRow, encode_rows
from marketpulse.feeds.simulator import SimSpec, default_universe
from marketpulse.feeds.simulator.trading_calendar import IST, ist_date
from marketpulse.model import Tick, parse_derivative_name

TEST_API_KEY: Final = "test-paytm-api-key"
TEST_API_SECRET: Final = "test-paytm-api-secret"
REDIRECT_URL: Final = "http://127.0.0.1/paytm-redirect"
OUTBOX_FRAMES: Final = 5000
INDEX_IDS: Final = {"NIFTY50": 13, "NIFTYBANK": 25, "SENSEX": 51}
INDEX_NAMES: Final = {"NIFTY50": "NIFTY 50", "NIFTYBANK": "NIFTY BANK", "SENSEX": "SENSEX"}
FIRST_FUTURE_ID: Final = 35000


@dataclass(frozen=True, slots=True)
class Listing:
    spec: SimSpec
    key: str
    row: ScripRow


def build_listing(specs: Iterable[SimSpec]) -> list[Listing]:
    """Security-master rows for the simulator's universe (equities numbered from 1)."""
    out = []
    next_equity, next_future, next_index = 1, FIRST_FUTURE_ID, 900
    for spec in specs:
        inst = spec.instrument
        exchange = "BSE" if inst.exchange.value.startswith("B") else "NSE"
        if spec.is_index:
            ident = INDEX_IDS.get(inst.symbol)
            if ident is None:
                ident, next_index = next_index, next_index + 1
            row = ScripRow(ident, exchange, "INDEX", INDEX_NAMES.get(inst.symbol, inst.symbol),
                           inst.name or inst.symbol, lot_size=1, tick_size=0.01)  # fmt: skip
        elif inst.expiry is not None:
            parts = parse_derivative_name(inst.symbol)
            row = ScripRow(next_future, exchange, "FUTURE",
                           parts.underlying if parts else inst.symbol, inst.name or "",
                           expiry=inst.expiry, lot_size=inst.lot_size,
                           tick_size=inst.tick_size)  # fmt: skip
            next_future += 1
        else:
            row = ScripRow(next_equity, exchange, "EQUITY", inst.symbol, inst.name or "", "EQ",
                           lot_size=inst.lot_size, tick_size=inst.tick_size)  # fmt: skip
            next_equity += 1
        out.append(Listing(spec, wire.make_key(row.exchange, row.security_id, row.scrip_type),
                           row))  # fmt: skip
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(kind: str, expires_at: float, ident: int = 4242) -> str:
    """A real-looking HS256 JWT (unsigned: the signature is random) with Paytm's claims."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = {"aud": "merchant", "iss": "paytmmoney", "id": ident, "exp": int(expires_at),
            "kind": kind}  # fmt: skip
    return f"{head}.{_b64(json.dumps(body).encode())}.{_b64(secrets.token_bytes(32))}"


@dataclass(frozen=True, slots=True)
class Tokens:
    access: str
    public: str
    read: str


@dataclass(slots=True)
class ConnectionLog:
    """What one socket did, kept after it closes (for tests and diagnostics)."""

    token: str
    messages: list[list[wire.Preference]] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)  # key → LTP/QUOTE/FULL
    frames_sent: int = 0
    frames_dropped: int = 0
    closed: str | None = None


class EmulatedConnection(QueuedConnection[bytes | str, ConnectionLog]):
    """One client socket's server side: its subscriptions and its outbox."""

    def __init__(self, emulator: PaytmEmulator, token: str) -> None:
        super().__init__(emulator.faults, ConnectionLog(token), OUTBOX_FRAMES)
        self.emulator = emulator

    def handle(self, text: str) -> None:
        """Apply one preference message; a malformed one gets a text frame (and is ignored)."""
        try:
            prefs = wire.decode_preferences(text)
        except ValueError as exc:
            self.send_text(json.dumps({"status": "error", "message": str(exc)}))
            return
        self.log.messages.append(prefs)
        modes = self.log.modes
        added: list[str] = []
        for pref in prefs:
            key = wire.normalize_key(pref.key)
            if pref.action == "REMOVE":
                modes.pop(key, None)
                continue
            if key not in modes and len(modes) >= self.emulator.max_instruments:
                self.send_text(json.dumps({"status": "error", "message":
                    f"subscription limit of {self.emulator.max_instruments} instruments "
                    f"reached; {key} ignored"}))  # fmt: skip
                continue
            modes[key] = pref.mode
            added.append(key)
        last = self.emulator.last
        frame = b"".join(self._packets(key, last[key]) for key in added if key in last)
        if frame:
            self._queue(frame)

    def _packets(self, key: str, tick: Tick) -> bytes:
        mode = self.log.modes.get(key)
        if mode is None:
            return b""
        canonical = mode.lower()
        shaped = tick if tick.mode == canonical else msgspec.structs.replace(tick, mode=canonical)
        return wire.encode_tick(shaped)

    def offer(self, keyed: Iterable[tuple[str, Tick]]) -> None:
        if not self.log.modes:
            return
        frame = b"".join(self._packets(key, tick) for key, tick in keyed)
        if frame:
            self._queue(frame)

    def send_text(self, text: str) -> None:
        self._queue(text)

    def close(self, code: int | None, reason: str) -> None:
        self.log.closed = self.log.closed or f"{code} {reason}"
        self._queue_close(code, reason)


class PaytmEmulator(MarketEmulator[EmulatedConnection, ConnectionLog]):
    """Everything the emulated endpoints share."""

    name = "paytm"
    last: dict[str, Tick]

    def __init__(
        self,
        options: EmulatorOptions,
        *,
        max_instruments: int = 200,
        max_connections: int = 1,
        redirect_url: str = REDIRECT_URL,
        slice_seconds: float = 0.05,
        today: date | None = None,
    ) -> None:
        super().__init__(options, slice_seconds=slice_seconds)
        self.max_instruments = max_instruments
        self.max_connections = max_connections
        self.redirect_url = redirect_url
        day = today or ist_date(options.clock())
        universe = default_universe(day, options.extra_instruments)
        self.listings = build_listing(universe.specs)
        self.by_key = {item.key: item for item in self.listings}
        self._key_of_sim = {item.spec.token: item.key for item in self.listings}
        expires = datetime.combine(day, TOKEN_DEATH, IST).timestamp()
        self.tokens = Tokens(make_jwt("access", expires), make_jwt("public", expires),
                             make_jwt("read", expires))  # fmt: skip
        self.request_tokens: set[str] = set()
        self.rejected: list[int] = []
        self.rest_requests: list[str] = []
        self._start_market(universe)

    def key(self, symbol: str) -> str:
        """The Paytm key of a canonical symbol of the universe."""
        return next(item.key for item in self.listings if item.spec.symbol == symbol)

    # ------------------------------------------------------------------ accounts

    def feed_token_problem(self, token: str | None) -> int | None:
        """The HTTP status refusing this socket token, or ``None``."""
        if token != self.tokens.public or self.faults.token_expired():
            return 401
        live = sum(1 for c in self.connections if c.log.token == token)
        return 429 if live >= self.max_connections else None

    def rest_token_ok(self, token: str | None) -> bool:
        return token in (self.tokens.access, self.tokens.read) and not self.faults.token_expired()

    def issue_request_token(self) -> str:
        token = secrets.token_hex(12)
        self.request_tokens.add(token)
        return token

    def open_connection(self, token: str) -> EmulatedConnection:
        return self._register(EmulatedConnection(self, token))

    # ------------------------------------------------------------------ market

    def _own_tick(self, tick: Tick) -> Tick:
        key = self._key_of_sim[tick.token]
        return msgspec.structs.replace(tick, source="paytm", token=key, symbol=None)

    def send_text(self, text: str) -> None:
        for connection in self.connections:
            connection.send_text(text)

    def security_master(self) -> str:
        return encode_rows(item.row for item in self.listings)
