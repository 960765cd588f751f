"""Realistic ticks for tests: the simulator's core, seeded, no event loop."""

from __future__ import annotations

import time
from datetime import date

from marketpulse.feeds.simulator import SimulatedMarket, default_universe
from marketpulse.model import Mode, Tick


def sample_ticks(count: int, seed: int = 7, mode: Mode = Mode.FULL) -> list[Tick]:
    universe = default_universe(date.today())
    market = SimulatedMarket(universe, seed)
    market.subscribe(universe.tokens, mode)
    return market.generate(count, time.time_ns())
