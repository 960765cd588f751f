"""What every emulator can be told: where its market comes from and which faults to inject."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Faults:
    """Scheduled misbehaviour, for tests and demos of reconnect handling.

    ``drop_every``: close every live WebSocket every N seconds. ``silence_after``: a connection
    stops sending anything (data and heartbeats) N seconds after it opened. ``expire_token_after``:
    N seconds after start the valid access token stops being accepted, live sockets are closed
    and new handshakes get the broker's auth error (as when a daily token rolls over).
    """

    drop_every: float | None = None
    silence_after: float | None = None
    expire_token_after: float | None = None


@dataclass(slots=True)
class EmulatorOptions:
    seed: int = 42
    ticks_per_second: float = 100.0
    always_open: bool = True
    extra_instruments: int = 0
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    instruments: int | None = None
    """Pace the market over only the first N instruments of the universe (load tests ask for
    an exact rate over N instruments); ``None`` streams the whole universe."""
    paused: bool = False
    """While set, the paced market sends nothing (a load test opens and closes its measuring
    window with it); pacing restarts from zero when it is cleared."""


class FaultClock:
    """Answers "is the token still valid?" and "should this socket be dropped/silent now?"."""

    def __init__(self, faults: Faults, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults = faults
        self._clock = clock
        self.started = clock()
        self.drops = asyncio.Event()

    def token_expired(self) -> bool:
        after = self.faults.expire_token_after
        return after is not None and self._clock() - self.started >= after

    def silent(self, connection_opened: float) -> bool:
        after = self.faults.silence_after
        return after is not None and self._clock() - connection_opened >= after

    def now(self) -> float:
        return self._clock()
