"""The emulator's smart-stream: subscriptions per (mode, token), packets, heartbeats, faults.

One :class:`StreamHub` serves every socket. The simulator's market moves the union of all
subscribed tokens at ``ticks_per_second``; each tick is encoded with ``wire.encode_packet`` once
per wire mode somebody wants and queued to every subscriber (one packet per binary message,
spec §4.1). Tests can queue exact ticks with :meth:`StreamHub.push`. Semantics follow the spec's
emulator checklist (§9):

- handshake: ``x-client-code`` + ``x-feed-token`` required, ``Authorization`` (raw or
  ``Bearer``) and ``x-api-key`` checked when sent → else HTTP 401 before the upgrade; a client
  code's fourth concurrent socket gets HTTP 429;
- subscribe (action 1) adds (mode, token) per exchangeType, unsubscribe (0) removes, unknown
  removals are ignored, no acknowledgements; more than the per-connection token limit rejects
  the whole request with the E1002 error text (existing subscriptions stay);
- a token subscribed in two modes gets both packet kinds (unverified on the real server);
- text ``ping`` → text ``pong``; control pings are answered by the WebSocket layer;
- a new subscription first gets the token's last packet (the real server is believed to send a
  snapshot; we only have one once the token has traded here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from starlette.websockets import WebSocket, WebSocketDisconnect

from marketpulse.emulators.angelone.accounts import Accounts, Refusal, Session
from marketpulse.emulators.denials import deny
from marketpulse.emulators.options import EmulatorOptions, FaultClock
from marketpulse.feeds.angelone import wire
from marketpulse.feeds.simulator.market import SimulatedMarket
from marketpulse.feeds.simulator.trading_calendar import session_open
from marketpulse.feeds.simulator.universe import SimSpec
from marketpulse.model import Mode, Tick

log = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 50_000
Key = tuple[int, str]  # (exchangeType, token)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    tokens_per_connection: int = 1000
    connections_per_client: int = 3


@dataclass(slots=True)
class StreamClient:
    """One accepted socket and everything a test may want to inspect about it."""

    id: int
    session: Session
    opened: float  # fault-clock time
    ws: WebSocket
    modes: dict[Key, set[int]] = field(default_factory=dict)
    requests: list[wire.SubscriptionRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pings: int = 0
    packets: int = 0
    dropped: int = 0
    closed: bool = False
    outbox: asyncio.Queue[bytes | str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    @property
    def tokens(self) -> set[Key]:
        return set(self.modes)

    def mode_of(self, key: Key) -> set[int]:
        return self.modes.get(key, set())

    def send(self, item: bytes | str) -> None:
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1


class StreamHub:
    def __init__(
        self,
        options: EmulatorOptions,
        market: SimulatedMarket,
        accounts: Accounts,
        faults: FaultClock,
        limits: StreamLimits,
    ) -> None:
        self.options = options
        self.market = market
        self.accounts = accounts
        self.faults = faults
        self.limits = limits
        self.clients: list[StreamClient] = []  # live
        self.history: list[StreamClient] = []  # every accepted socket, for tests
        self.rejected: list[int] = []  # HTTP statuses of refused handshakes
        self.last: dict[Key, Tick] = {}
        self._ids = itertools.count(1)
        self._sequence: dict[Key, int] = {}
        self._subscribers: dict[Key, list[StreamClient]] = {}
        self._exchange_types = {
            spec.token: wire.EXCHANGE_TYPES[spec.instrument.exchange.value]
            for spec in market.universe.specs
        }
        self._bands = {spec.token: _bands(spec) for spec in market.universe.specs}

    # ------------------------------------------------------------------ handshake + socket

    async def serve(self, ws: WebSocket) -> None:
        headers = ws.headers
        params = ws.query_params
        session = self.accounts.for_stream(
            headers.get("x-client-code") or params.get("clientCode"),
            headers.get("x-feed-token") or params.get("feedToken"),
            headers.get("authorization"),
            headers.get("x-api-key") or params.get("apiKey"),
        )
        if isinstance(session, Refusal):
            self.rejected.append(401)
            await deny(ws, 401, f"{session.errorcode}: {session.message}")
            return
        live = sum(1 for c in self.clients if c.session.client_code == session.client_code)
        if live >= self.limits.connections_per_client:
            self.rejected.append(429)
            await deny(ws, 429, "Too Many Requests: connection limit reached")
            return
        await ws.accept()
        client = StreamClient(next(self._ids), session, self.faults.now(), ws)
        self.clients.append(client)
        self.history.append(client)
        writer = asyncio.create_task(self._write(client), name=f"angelone-emulator:w{client.id}")
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    client.send(wire.encode_error("E1001", "Invalid Request. Binary not accepted"))
                    continue
                self._on_text(client, text)
        except WebSocketDisconnect:
            pass
        finally:
            client.closed = True
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self._forget(client)

    async def _write(self, client: StreamClient) -> None:
        ws = client.ws
        with contextlib.suppress(Exception):  # the socket went away; the reader notices
            while True:
                item = await client.outbox.get()
                if self.faults.silent(client.opened):
                    continue  # the silent fault swallows everything, heartbeats included
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                    client.packets += 1
                else:
                    await ws.send_text(item)

    async def close(self, client: StreamClient, code: int, reason: str) -> None:
        if client.closed:
            return
        client.closed = True
        with contextlib.suppress(Exception):
            await client.ws.close(code, reason)

    # ------------------------------------------------------------------ requests

    def _on_text(self, client: StreamClient, text: str) -> None:
        parsed = wire.parse_client_text(text)
        if isinstance(parsed, wire.Ping):
            client.pings += 1
            client.send(wire.PONG)
        elif isinstance(parsed, wire.InvalidRequest):
            client.errors.append(parsed.reason)
            client.send(wire.encode_error("E1001", "Invalid Request. " + parsed.reason,
                                          parsed.correlation_id))  # fmt: skip
        else:
            client.requests.append(parsed)
            if parsed.action == wire.Action.SUBSCRIBE:
                self._subscribe(client, parsed)
            else:
                self._unsubscribe(client, parsed)

    def _subscribe(self, client: StreamClient, request: wire.SubscriptionRequest) -> None:
        keys = [(g.exchange_type, t) for g in request.token_list for t in g.tokens]
        total = len(client.tokens | set(keys))
        if total > self.limits.tokens_per_connection:
            message = "Invalid Request. Subscription Limit Exceeded"
            client.errors.append(message)
            client.send(wire.encode_error("E1002", message, request.correlation_id or ""))
            return
        for key in keys:
            modes = client.modes.setdefault(key, set())
            if request.mode in modes:
                continue
            modes.add(request.mode)
            subscribers = self._subscribers.setdefault(key, [])
            if client not in subscribers:
                subscribers.append(client)
            last = self.last.get(key)
            if last is not None:
                client.send(self._packet(last, request.mode, key))
        self._sync_market()

    def _unsubscribe(self, client: StreamClient, request: wire.SubscriptionRequest) -> None:
        for group in request.token_list:
            for token in group.tokens:
                key = (group.exchange_type, token)
                modes = client.modes.get(key)
                if modes is None:
                    continue
                modes.discard(request.mode)
                if not modes:
                    del client.modes[key]
                    self._drop_subscriber(key, client)
        self._sync_market()

    def _forget(self, client: StreamClient) -> None:
        if client in self.clients:
            self.clients.remove(client)
        for key in list(client.modes):
            self._drop_subscriber(key, client)
        self._sync_market()

    def _drop_subscriber(self, key: Key, client: StreamClient) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers and client in subscribers:
            subscribers.remove(client)
            if not subscribers:
                del self._subscribers[key]

    def _sync_market(self) -> None:
        """The market moves exactly the universe tokens somebody subscribed, in full mode."""
        wanted = {
            token for (code, token) in self._subscribers if self._exchange_types.get(token) == code
        }
        current = set(self.market.subscriptions)
        if wanted != current:
            self.market.unsubscribe(current - wanted)
            self.market.subscribe(sorted(wanted - current), Mode.FULL)

    # ------------------------------------------------------------------ packets

    def key_of(self, tick: Tick) -> Key:
        return (wire.EXCHANGE_TYPES[tick.exchange], tick.token)

    def _packet(self, tick: Tick, mode: int, key: Key) -> bytes:
        sequence = self._sequence.get(key, 0)
        return wire.encode_packet(tick, mode, sequence=sequence)

    def push(self, ticks: Iterable[Tick]) -> int:
        """Send ``ticks`` to their subscribers now, in order; returns the packets queued.

        Ticks are encoded in each subscriber's modes, so their prices must be on the paise
        grid and ``ts_last_trade`` whole seconds for a client to see exactly these values.
        """
        sent = 0
        for tick in ticks:
            key = self.key_of(tick)
            self.last[key] = tick
            self._sequence[key] = self._sequence.get(key, 0) + 1
            packets: dict[int, bytes] = {}
            for client in self._subscribers.get(key, ()):
                for mode in sorted(client.mode_of(key)):
                    packet = packets.get(mode)
                    if packet is None:
                        packet = packets[mode] = self._packet(tick, mode, key)
                    client.send(packet)
                    sent += 1
        return sent

    def broadcast(self, frame: bytes | str) -> None:
        """Send one raw frame to every live socket (tests of malformed or unexpected input)."""
        for client in self.clients:
            client.send(frame)

    # ------------------------------------------------------------------ background tasks

    async def run_market(self, slice_seconds: float = 0.05) -> None:
        """Move the simulated market at ``ticks_per_second`` (0 = scripted ticks only)."""
        rate = self.options.ticks_per_second
        if rate <= 0:
            return
        origin = time.monotonic()
        emitted = 0
        while True:
            await asyncio.sleep(max(slice_seconds, 1.0 / rate))
            now = time.monotonic()
            due = int((now - origin) * rate) - emitted
            cap = max(1, math.ceil(rate * 0.5))  # never burst to catch up after a stall
            if due > cap:
                emitted += due - cap
                due = cap
            emitted += due
            if due <= 0 or not self.market.subscribed:
                continue
            if not (self.options.always_open or session_open(self.options.clock())):
                continue
            ticks = self.market.generate(due, int(self.options.clock() * 1e9))
            for tick in ticks:
                bands = self._bands.get(tick.token)
                if bands is not None:
                    upper, lower, high_52w, low_52w = bands
                    tick.upper_circuit, tick.lower_circuit = upper, lower
                    tick.high_52w = max(high_52w, tick.high or 0.0)
                    tick.low_52w = min(low_52w, tick.low or low_52w)
            self.push(ticks)

    async def run_faults(self, check_every: float = 0.05) -> None:
        """Drop every socket every ``drop_every`` s; close sockets whose session expired."""
        drop_every = self.faults.faults.drop_every
        next_drop = self.faults.now() + drop_every if drop_every else math.inf
        while True:
            await asyncio.sleep(check_every)
            now = self.faults.now()
            if now >= next_drop:
                next_drop = now + (drop_every or math.inf)
                for client in list(self.clients):
                    await self.close(client, 1011, "dropped by the emulator (drop_every)")
            for client in list(self.clients):
                if self.accounts.expired(client.session):
                    await self.close(client, 1008, "session expired")

    def subscribed_tokens(self, clients: Sequence[StreamClient] | None = None) -> set[Key]:
        """Every (exchangeType, token) some live socket has subscribed."""
        chosen = self.clients if clients is None else clients
        return set().union(*(c.tokens for c in chosen)) if chosen else set()


def _bands(spec: SimSpec) -> tuple[float, float, float, float] | None:
    """Circuit limits (±20 % of the previous close) and a 52-week range for a traded instrument,
    on its tick grid; the simulator models neither, and zeros would look like missing data."""
    if spec.is_index:
        return None
    tick = spec.instrument.tick_size or 0.05

    def grid(price: float) -> float:
        return round(round(price / tick) * tick, 2)

    close = spec.close
    return grid(close * 1.2), grid(close * 0.8), grid(close * 1.35), grid(close * 0.7)
