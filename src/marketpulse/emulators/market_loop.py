"""The part every emulator's server shares: pace the simulated market and run the faults.

An emulator supplies what differs — how generated ticks reach its sockets, and what its broker
does when a token expires (Kite closes with 1008, Dhan sends a 807 disconnect packet, …) — and
:func:`run_market` does the pacing and the schedule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from marketpulse.emulators.options import EmulatorOptions, FaultClock
from marketpulse.feeds.simulator import session_open

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
