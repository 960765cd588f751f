"""The simulator as a feed: the :class:`SimulatedMarket` behind the broker contract of base.py.

The connection paces the market to ``ticks_per_second`` in time slices rather than one sleep
per tick, so rates of 100k ticks/s cost one event-loop wakeup per slice. Pacing runs on the
monotonic clock while timestamps and market hours come from the injectable wall clock, so a
test can freeze the wall clock at any instant and still receive ticks at the configured rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAdapter, FeedConnection, FeedConnectionError
from marketpulse.feeds.simulator.market import SimulatedMarket
from marketpulse.feeds.simulator.trading_calendar import ist_date, session_open
from marketpulse.feeds.simulator.universe import Universe, default_universe
from marketpulse.model import Mode, Tick

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class SimulatorConnection(FeedConnection):
    """One simulated session. Like a fresh broker socket it starts with no subscriptions.

    ``receive`` returns the ticks due since the previous call, or ``[]`` at least every
    ``heartbeat_seconds`` while the market is closed or nothing is subscribed. A consumer that
    falls behind by more than ``max_batch_seconds`` of ticks loses the excess: the simulator
    models a market, not a queue, so it never bursts to catch up.
    """

    def __init__(
        self,
        market: SimulatedMarket,
        *,
        ticks_per_second: float,
        always_open: bool,
        clock: Clock,
        heartbeat_seconds: float = 1.0,
        slice_seconds: float = 0.02,
        max_batch_seconds: float = 0.1,
        monotonic: Clock = time.monotonic,
    ) -> None:
        if ticks_per_second <= 0:
            raise ValueError(f"ticks_per_second must be positive, got {ticks_per_second}")
        self._market = market
        self._rate = ticks_per_second
        self._always_open = always_open
        self._clock = clock
        self._monotonic = monotonic
        self._heartbeat = heartbeat_seconds
        self._slice_ticks = max(1, int(ticks_per_second * slice_seconds))
        self._max_batch = max(1, math.ceil(ticks_per_second * max_batch_seconds))
        self._origin: float | None = None  # monotonic time pacing counts from
        self._emitted = 0
        self._wake = asyncio.Event()
        self._closed = False
        market.unsubscribe_all()

    async def subscribe(self, tokens: Sequence[str], mode: Mode) -> None:
        self._ensure_open()
        unknown = self._market.subscribe(tokens, mode)
        if unknown:
            log.warning(
                "sim: %d unknown token(s) ignored, e.g. %s", len(unknown), ", ".join(unknown[:5])
            )
        self._wake.set()

    async def unsubscribe(self, tokens: Sequence[str]) -> None:
        self._ensure_open()
        self._market.unsubscribe(tokens)

    async def receive(self) -> list[Tick]:
        self._ensure_open()
        if not self._streaming():
            self._origin = None
            await self._idle()
            return []
        due = self._due()
        if due < self._slice_ticks:
            await asyncio.sleep(self._until_slice_due())
            self._ensure_open()
            if not self._streaming():
                return []
            due = self._due()
            if due == 0:
                return []
        self._emitted += due
        return self._market.generate(due, int(self._clock() * 1e9))

    async def close(self) -> None:
        # The subscriptions stay in the market: the next connection clears them on creation,
        # and a late close of a stale connection must not wipe the live one's.
        self._closed = True
        self._wake.set()

    def _ensure_open(self) -> None:
        if self._closed:
            raise FeedConnectionError("simulator connection is closed")

    def _streaming(self) -> bool:
        return self._market.subscribed > 0 and (self._always_open or session_open(self._clock()))

    async def _idle(self) -> None:
        """Wait one heartbeat, or less if a subscription arrives meanwhile."""
        self._wake.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._heartbeat):
                await self._wake.wait()

    def _due(self) -> int:
        """Ticks owed since pacing started, capped at one batch (the excess is dropped)."""
        now = self._monotonic()
        if self._origin is None:
            self._origin = now
            self._emitted = 0
        due = int((now - self._origin) * self._rate) - self._emitted
        if due > self._max_batch:
            self._emitted += due - self._max_batch
            due = self._max_batch
        return due

    def _until_slice_due(self) -> float:
        """Seconds until a slice's worth of ticks is owed, so batches are not dribbled out."""
        assert self._origin is not None
        due_at = self._origin + (self._emitted + self._slice_ticks) / self._rate
        return min(max(due_at - self._monotonic(), 0.0), self._heartbeat)


class SimulatorAdapter(FeedAdapter):
    """The ``sim`` feed: a seeded synthetic market, no credentials and no instrument cap.

    The adapter owns the market so prices carry on across reconnects; the connection it
    hands out owns only pacing. One live connection at a time is what the supervisor opens
    for a feed without a per-connection cap, and all connections share one subscription set.
    """

    name = "sim"
    max_instruments_per_connection = None
    max_connections = 1

    def __init__(
        self,
        *,
        seed: int = 42,
        ticks_per_second: float = 200.0,
        always_open: bool = False,
        extra_instruments: int = 0,
        universe: Universe | None = None,
        clock: Clock = time.time,
        heartbeat_seconds: float = 1.0,
        slice_seconds: float = 0.02,
    ) -> None:
        self.ticks_per_second = ticks_per_second
        self.always_open = always_open
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.slice_seconds = slice_seconds
        if universe is None:
            universe = default_universe(ist_date(clock()), extra_instruments)
        self.universe = universe
        self.market = SimulatedMarket(self.universe, seed)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SimulatorAdapter:
        """Build from ``SIM_*`` settings; keyword ``overrides`` (e.g. ``clock``) win."""
        options: dict[str, Any] = {
            "seed": settings.sim_seed,
            "ticks_per_second": settings.sim_ticks_per_second,
            "always_open": settings.sim_always_open,
            "extra_instruments": settings.sim_extra_instruments,
        }
        options.update(overrides)
        return cls(**options)

    async def connect(self, credentials: Any) -> SimulatorConnection:
        return SimulatorConnection(
            self.market,
            ticks_per_second=self.ticks_per_second,
            always_open=self.always_open,
            clock=self.clock,
            heartbeat_seconds=self.heartbeat_seconds,
            slice_seconds=self.slice_seconds,
        )

    def market_open(self, now: float) -> bool:
        return self.always_open or session_open(now)
