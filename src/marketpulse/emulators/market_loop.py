"""The part every emulator's server shares: pace the simulated market and run the faults.

An emulator supplies what differs — how generated ticks reach its sockets, and what its broker
does when a token expires (Kite closes with 1008, Dhan sends a 807 disconnect packet, …) — and
:func:`run_market` does the pacing and the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from marketpulse.emulators.options import EmulatorOptions, FaultClock
from marketpulse.feeds.simulator import SimulatedMarket, Universe, session_open
from marketpulse.model import Mode, Tick

log = logging.getLogger(__name__)

Emit = Callable[[int, int], None]
"""``emit(count, ts_ns)``: generate ``count`` ticks stamped ``ts_ns`` and send them."""


class Subscriber(Protocol):
    """What the market needs of a connection: ticks offered, raw frames and closes queued."""

    @property
    def log(self) -> Any: ...

    def offer(self, keyed: Any) -> None: ...

    def send_raw(self, data: Any) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


ConnectionT = TypeVar("ConnectionT", bound=Subscriber)
LogT = TypeVar("LogT")


async def run_market(
    options: EmulatorOptions,
    faults: FaultClock,
    *,
    emit: Emit,
    drop_all: Callable[[], None],
    expire: Callable[[], None],
    slice_seconds: float = 0.05,
) -> None:
    """Stream at ``options.ticks_per_second`` (during the session unless ``always_open``),
    drop every socket every ``drop_every`` seconds and expire the token once, until cancelled."""
    async with asyncio.TaskGroup() as group:
        if options.ticks_per_second > 0:
            group.create_task(_stream(options, emit, slice_seconds))
        schedule = faults.faults
        if schedule.drop_every:
            group.create_task(_drop_every(schedule.drop_every, drop_all))
        if schedule.expire_token_after is not None:
            group.create_task(_expire(faults, schedule.expire_token_after, expire))


async def _stream(options: EmulatorOptions, emit: Emit, slice_seconds: float) -> None:
    rate = options.ticks_per_second
    clock = options.clock
    max_batch = max(1, int(rate))  # after a stall, at most a second's worth at once
    origin: float | None = None
    emitted = 0
    while True:
        await asyncio.sleep(slice_seconds)
        if options.paused or not (options.always_open or session_open(clock())):
            origin = None
            continue
        now = time.monotonic()
        if origin is None:
            origin, emitted = now, 0
        due = int((now - origin) * rate) - emitted
        if due > max_batch:
            emitted += due - max_batch
            due = max_batch
        if due <= 0:
            continue
        emitted += due
        emit(due, int(clock() * 1e9))


async def _drop_every(seconds: float, drop_all: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        drop_all()


async def _expire(faults: FaultClock, after: float, expire: Callable[[], None]) -> None:
    await asyncio.sleep(max(0.0, after - (faults.now() - faults.started)))
    expire()


class MarketEmulator(Generic[ConnectionT, LogT]):
    """The live-socket side every queue-based broker emulator shares: seed and move the
    simulated market, keep each instrument's latest tick, fan ticks out to the connections,
    drop them on schedule, and react when the access token expires.

    A subclass builds its listing, then calls :meth:`_start_market`; it says how a simulator
    tick becomes its broker's tick (:meth:`_own_tick`, the ``token`` set to the broker's key)
    and, where that key is not the fan-out key, how a tick is kept (:meth:`_keep`). It is
    parameterised by its connection class and that class's log.
    """

    name: ClassVar[str]
    """The broker, as ``marketpulse emulate`` names it (task names, log lines)."""
    options: EmulatorOptions
    faults: FaultClock
    slice_seconds: float
    market: SimulatedMarket
    last: dict[Any, Tick]
    connections: list[ConnectionT]
    history: list[LogT]
    """Every connection's log, kept after it closes (for tests and diagnostics)."""

    def __init__(self, options: EmulatorOptions, *, slice_seconds: float) -> None:
        self.options = options
        self.slice_seconds = slice_seconds
        self.faults = FaultClock(options.faults)
        self.last = {}
        self.connections = []
        self.history = []

    # ------------------------------------------------------------------ connections

    def _register(self, connection: ConnectionT) -> ConnectionT:
        """Offer ticks to ``connection`` from now on, and keep its log."""
        self.connections.append(connection)
        self.history.append(connection.log)
        return connection

    def forget(self, connection: ConnectionT) -> None:
        """Stop offering ticks to a connection whose socket ended."""
        with contextlib.suppress(ValueError):
            self.connections.remove(connection)

    def send_raw(self, data: Any) -> None:
        for connection in self.connections:
            connection.send_raw(data)

    def drop_all(self, code: int = 1011, reason: str = "dropped by the emulator") -> None:
        for connection in list(self.connections):
            connection.close(code, reason)

    def token_expired(self) -> None:
        """The scheduled token expiry (``expire_token_after``): close every socket as the
        broker does; brokers that signal it differently override this."""
        log.info("%s emulator: the access token expired; closing every socket", self.name)
        self.drop_all(1008, "access token expired")

    # ------------------------------------------------------------------ market

    def _start_market(self, universe: Universe) -> None:
        """Give every instrument a quote (one trade each) before the first tick, then let the
        market move the first ``options.instruments`` instruments (all by default)."""
        self.market = SimulatedMarket(universe, self.options.seed)
        tokens = universe.tokens
        now_ns = int(self.options.clock() * 1e9)
        for token in tokens:
            self.market.unsubscribe_all()
            self.market.subscribe([token], Mode.FULL)
            self._remember(self.market.generate(1, now_ns))
        if self.options.instruments is not None:  # the seeding left one instrument subscribed
            self.market.unsubscribe_all()
        self.market.subscribe(tokens[: self.options.instruments], Mode.FULL)

    def _own_tick(self, tick: Tick) -> Tick:
        """The simulator's ``tick`` as this broker's tick (``token`` = the broker's key)."""
        raise NotImplementedError

    def _keep(self, tick: Tick) -> tuple[Any, Tick]:
        """Keep a broker tick as its instrument's latest state; its fan-out key with it."""
        self.last[tick.token] = tick
        return tick.token, tick

    def _remember(self, ticks: list[Tick]) -> list[tuple[Any, Tick]]:
        return [self._keep(self._own_tick(tick)) for tick in ticks]

    def push(self, ticks: Iterable[Tick]) -> None:
        """Send exactly these ticks (``token`` = the broker's key) to every subscriber, each
        connection in its own modes."""
        self._fan_out([self._keep(tick) for tick in ticks])

    def _fan_out(self, keyed: list[tuple[Any, Tick]]) -> None:
        for connection in self.connections:
            connection.offer(keyed)

    async def run(self) -> None:
        """Generate the market, and apply the scheduled faults, until cancelled."""
        await run_market(
            self.options, self.faults, slice_seconds=self.slice_seconds,
            emit=lambda count, ts: self._fan_out(self._remember(self.market.generate(count, ts))),
            drop_all=lambda: self.drop_all(1011, "scheduled drop (drop_every)"),
            expire=self.token_expired,
        )  # fmt: skip
