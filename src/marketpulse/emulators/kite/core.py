"""The emulated Kite back end: accounts, the market, live ticker connections, faults.

One :class:`KiteEmulator` per app holds everything the WebSocket and REST handlers share. The
simulator generates every instrument in ``full`` mode at ``ticks_per_second``; each tick is
re-keyed to its Kite token, kept as the instrument's latest state (what ``/quote`` answers) and
offered to every connection, which keeps the instruments it subscribed in its own mode and
encodes them with the feed's own wire encoder. Tests script exact ticks with :meth:`push`
(with ``ticks_per_second=0`` nothing else is sent) and read what the server saw in
:attr:`KiteEmulator.history`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from marketpulse.emulators.kite.listing import KiteListing
from marketpulse.emulators.market_loop import MarketEmulator
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.outbox import CloseRequest, QueuedConnection
from marketpulse.feeds.kite.wire import (
    HEARTBEAT,
    ClientMessage,
    ErrorMessage,
    KiteTextMessage,
    decode_client_message,
    encode_frame,
    encode_text,
)
from marketpulse.feeds.simulator import default_universe
from marketpulse.feeds.simulator.trading_calendar import ist_date
from marketpulse.model import Mode, Tick

log = logging.getLogger(__name__)

TEST_API_KEY: Final = "test_api_key"
TEST_API_SECRET: Final = "test_api_secret"
TEST_ACCESS_TOKEN: Final = "test_access_token"
TEST_PUBLIC_TOKEN: Final = "test_public_token"
TEST_USER_ID: Final = "MP0001"

MAX_TOKENS_PER_CONNECTION: Final = 3000
MAX_CONNECTIONS_PER_KEY: Final = 3
OUTBOX_FRAMES: Final = 1000
"""Frames queued for one client; a client further behind loses frames (counted)."""


@dataclass(slots=True)
class ConnectionLog:
    """What one ticker connection did, kept after it closes (for tests and diagnostics)."""

    api_key: str
    opened_at: float
    requests: list[ClientMessage] = field(default_factory=list)
    modes: dict[int, str] = field(default_factory=dict)
    errors_sent: list[str] = field(default_factory=list)
    frames_sent: int = 0
    ticks_sent: int = 0
    frames_dropped: int = 0
    closed: str | None = None


class EmulatedConnection(QueuedConnection[bytes | str, ConnectionLog]):
    """One client's server side: its subscriptions ({token: mode}) and its outbox."""

    def __init__(self, emulator: KiteEmulator, api_key: str) -> None:
        super().__init__(emulator.faults, ConnectionLog(api_key, time.monotonic()), OUTBOX_FRAMES)
        self.emulator = emulator

    @property
    def modes(self) -> dict[int, str]:
        return self.log.modes

    # ------------------------------------------------------------------ client requests

    def handle(self, text: str) -> None:
        """Apply one client request (kite.md §2 semantics); a bad one gets an error message."""
        try:
            request = decode_client_message(text)
        except ValueError as exc:
            self.send_message(ErrorMessage(str(exc)))
            return
        self.log.requests.append(request)
        modes = self.log.modes
        if request.action == "subscribe":
            new = [t for t in dict.fromkeys(request.tokens) if t not in modes]
            room = max(0, self.emulator.max_tokens_per_connection - len(modes))
            for token in new[:room]:
                modes[token] = Mode.QUOTE.value  # new tokens stream in quote until told
            if len(new) > room:
                surplus = new[room:]
                self.send_message(
                    ErrorMessage(
                        f"subscription limit reached: at most "
                        f"{self.emulator.max_tokens_per_connection} instruments per connection; "
                        f"{len(surplus)} token(s) ignored, e.g. {surplus[:5]}"
                    )
                )
            self._snapshot(new[:room])
        elif request.action == "unsubscribe":
            for token in request.tokens:
                modes.pop(token, None)
        else:
            assert request.mode is not None
            changed = [t for t in request.tokens if t in modes]  # unsubscribed: no effect
            for token in changed:
                modes[token] = request.mode
            self._snapshot(changed)

    def _snapshot(self, tokens: list[int]) -> None:
        """Like Kite, a (re)subscribed instrument's current state is sent at once."""
        if not self.emulator.snapshots:
            return
        last = self.emulator.last
        self.offer([(t, last[t]) for t in tokens if t in last])

    # ------------------------------------------------------------------ server → client

    def offer(self, ticks: Iterable[tuple[int, Tick]]) -> None:
        """Queue the ``ticks`` this client subscribed, in its modes, as binary frames of at most
        ``max_tokens_per_connection`` packets."""
        modes = self.log.modes
        if not modes:
            return
        chosen = []
        for token, tick in ticks:
            mode = modes.get(token)
            if mode is not None:
                chosen.append(
                    tick if tick.mode == mode else msgspec.structs.replace(tick, mode=mode)
                )
        # Kite puts one packet per instrument in a frame, so a frame never holds more packets
        # than a connection may subscribe; a generator catching up after a stall sends several
        # frames instead of one the client's message size limit would refuse.
        per_frame = self.emulator.max_tokens_per_connection
        for start in range(0, len(chosen), per_frame):
            self._queue(encode_frame(chosen[start : start + per_frame]))

    def send_message(self, message: KiteTextMessage) -> None:
        if isinstance(message, ErrorMessage):
            self.log.errors_sent.append(message.data)
        self._queue(encode_text(message))

    async def next_item(self) -> bytes | str | CloseRequest:
        """The next queued item, or a heartbeat after ``heartbeat_interval`` idle seconds."""
        try:
            # not wait_for: it can swallow cancellation
            async with asyncio.timeout(self.emulator.heartbeat_interval):
                return await self.outbox.get()
        except TimeoutError:
            return HEARTBEAT


class KiteEmulator(MarketEmulator[EmulatedConnection, ConnectionLog]):
    """Shared state of one emulated Kite deployment (see the module docstring)."""

    name = "kite"
    last: dict[int, Tick]

    def __init__(
        self,
        options: EmulatorOptions,
        *,
        heartbeat_interval: float = 1.0,
        max_tokens_per_connection: int = MAX_TOKENS_PER_CONNECTION,
        max_connections_per_key: int = MAX_CONNECTIONS_PER_KEY,
        snapshots: bool = True,
        slice_seconds: float = 0.05,
    ) -> None:
        super().__init__(options, slice_seconds=slice_seconds)
        self.heartbeat_interval = heartbeat_interval
        self.max_tokens_per_connection = max_tokens_per_connection
        self.max_connections_per_key = max_connections_per_key
        self.snapshots = snapshots
        universe = default_universe(ist_date(options.clock()), options.extra_instruments)
        self.listing = KiteListing(universe)
        self.rejected: list[str] = []
        self.rest_requests: list[str] = []
        self.rest_faults: deque[int] = deque()
        """HTTP statuses the next data requests answer with (tests of retry handling)."""
        self.used_request_tokens: set[str] = set()
        self._start_market(universe)

    # ------------------------------------------------------------------ accounts

    def access_problem(self, api_key: str | None, access_token: str | None) -> str | None:
        """Why this api_key/access_token pair is refused, or ``None`` if it is accepted."""
        if api_key != TEST_API_KEY or access_token != TEST_ACCESS_TOKEN:
            return "Incorrect `api_key` or `access_token`."
        if self.faults.token_expired():
            return "Token is invalid or has expired."
        return None

    def live_connections(self, api_key: str) -> int:
        return sum(1 for c in self.connections if c.log.api_key == api_key)

    def open_connection(self, api_key: str) -> EmulatedConnection:
        return self._register(EmulatedConnection(self, api_key))

    # ------------------------------------------------------------------ market

    def _own_tick(self, tick: Tick) -> Tick:
        item = self.listing.by_sim_token[tick.token]
        return msgspec.structs.replace(tick, source="kite", token=str(item.token), symbol=None)

    def _keep(self, tick: Tick) -> tuple[int, Tick]:
        """Ticks are kept, and fanned out, by their numeric Kite token.

        So :meth:`push` raises ``ValueError`` for a tick that cannot be keyed or encoded (a
        test bug, not a feed condition)."""
        token = int(tick.token)
        self.last[token] = tick
        return token, tick
