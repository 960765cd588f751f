"""The part every emulator's server shares: pace the simulated market and run the faults.

An emulator supplies what differs — how generated ticks reach its sockets, and what its broker
does when a token expires (Kite closes with 1008, Dhan sends a 807 disconnect packet, …) — and
:func:`run_market` does the pacing and the schedule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from marketpulse.emulators.options import EmulatorOptions, FaultClock
from marketpulse.feeds.simulator import session_open
from marketpulse.model import Tick

Emit = Callable[[int, int], None]
"""``emit(count, ts_ns)``: generate ``count`` ticks stamped ``ts_ns`` and send them."""


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


class MarketEmulator:
    """The live-socket side every broker emulator shares: fan generated ticks out to its
    connections, drop them on schedule, and react when the access token expires.

    A subclass sets ``options``, ``faults``, ``slice_seconds``, ``market`` (a simulated market
    with ``generate(count, ts)``) and ``connections`` (objects with ``offer``, ``send_raw`` and
    ``close``), and turns simulator ticks into its own keyed ticks in :meth:`_remember`.
    """

    options: EmulatorOptions
    faults: FaultClock
    slice_seconds: float
    market: Any
    connections: list[Any]

    def _remember(self, ticks: list[Tick]) -> list[tuple[Any, Tick]]:
        raise NotImplementedError

    def send_raw(self, data: Any) -> None:
        for connection in self.connections:
            connection.send_raw(data)

    def drop_all(self, code: int = 1011, reason: str = "dropped by the emulator") -> None:
        for connection in list(self.connections):
            connection.close(code, reason)

    def _fan_out(self, keyed: list[tuple[Any, Tick]]) -> None:
        for connection in self.connections:
            connection.offer(keyed)

    def token_expired(self) -> None:
        """The scheduled token expiry (``expire_token_after``): close every socket as the
        broker does; brokers that signal it differently override this."""
        self.drop_all(1008, "access token expired")

    async def run(self) -> None:
        """Generate the market, and apply the scheduled faults, until cancelled."""
        await run_market(
            self.options, self.faults, slice_seconds=self.slice_seconds,
            emit=lambda count, ts: self._fan_out(self._remember(self.market.generate(count, ts))),
            drop_all=lambda: self.drop_all(1011, "scheduled drop (drop_every)"),
            expire=self.token_expired,
        )  # fmt: skip
