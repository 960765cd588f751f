"""Ticks per second the simulator core generates on one core.

Measured on :class:`SimulatedMarket` directly (no event loop, no pacing): that is the ceiling
for ``SIM_TICKS_PER_SECOND`` and for the benchmarks the simulator drives.
"""

from __future__ import annotations

from datetime import date

from bench import Result, measure, result
from marketpulse.feeds.simulator import SimulatedMarket, default_universe
from marketpulse.model import Mode, encode_tick

INSTRUMENTS = 1000
BATCH = 1000
_NOW_NS = 1_765_777_800 * 10**9  # 2025-12-15 11:20 IST, inside the session
_TODAY = date(2025, 12, 15)


def run() -> list[Result]:
    universe = default_universe(
        _TODAY, extra_instruments=INSTRUMENTS - len(default_universe(_TODAY))
    )
    assert len(universe) == INSTRUMENTS
    market = SimulatedMarket(universe, seed=42)
    results: list[Result] = []
    for mode in (Mode.FULL, Mode.QUOTE, Mode.LTP):
        market.subscribe(universe.tokens, mode)
        ns = measure(lambda: market.generate(BATCH, _NOW_NS), ops_per_call=BATCH)
        results.append(result(f"generate {mode.value} ({INSTRUMENTS} instruments)", ns))
    market.subscribe(universe.tokens, Mode.FULL)

    def generate_and_encode() -> None:
        for tick in market.generate(BATCH, _NOW_NS):
            encode_tick(tick)

    ns = measure(generate_and_encode, ops_per_call=BATCH)
    results.append(result(f"generate full + encode_tick ({INSTRUMENTS} instruments)", ns))
    return results
