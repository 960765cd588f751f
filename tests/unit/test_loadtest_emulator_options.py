"""The opt-in emulator options the load harness uses: a market over the first N instruments,
and a pause that sends nothing until it is lifted."""

from __future__ import annotations

import asyncio
import time

from marketpulse.emulators.kite import KiteEmulator
from marketpulse.emulators.market_loop import run_market
from marketpulse.emulators.options import EmulatorOptions, FaultClock


def test_the_kite_market_streams_only_the_first_n_instruments() -> None:
    emulator = KiteEmulator(EmulatorOptions(ticks_per_second=0, instruments=3))
    first = {emulator.listing.universe.tokens[i] for i in range(3)}
    ticks = emulator.market.generate(600, time.time_ns())
    assert {t.token for t in ticks} == first


def test_by_default_the_kite_market_streams_its_whole_universe() -> None:
    emulator = KiteEmulator(EmulatorOptions(ticks_per_second=0, extra_instruments=5))
    ticks = emulator.market.generate(20_000, time.time_ns())
    assert {t.token for t in ticks} == set(emulator.listing.universe.tokens)


async def test_a_paused_market_sends_nothing_until_resumed() -> None:
    options = EmulatorOptions(ticks_per_second=10_000, paused=True)
    emitted: list[int] = []
    resumed = asyncio.Event()

    def emit(count: int, ts_ns: int) -> None:
        emitted.append(count)
        resumed.set()

    clock = FaultClock(options.faults)
    loop = run_market(options, clock, emit=emit, drop_all=lambda: None, expire=lambda: None,
                      slice_seconds=0.01)  # fmt: skip
    market = asyncio.create_task(loop)
    try:
        for _ in range(20):  # many pacing slices pass while paused
            await asyncio.sleep(0.01)
        assert emitted == []
        options.paused = False
        await asyncio.wait_for(resumed.wait(), 10)
        assert sum(emitted) > 0
    finally:
        market.cancel()
        await asyncio.gather(market, return_exceptions=True)
