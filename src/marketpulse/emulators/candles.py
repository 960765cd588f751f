"""Synthetic but self-consistent candle history, served by every emulator's history API.

Every candle is a pure function of (seed, token, trading day): one seeded random walk of the
375 one-minute bars of the NSE session (09:15–15:30 IST), from which every coarser interval is
aggregated exactly as Kite does it (buckets aligned to 09:15; the day candle stamped 00:00 IST).
So a 5-minute candle is the aggregate of its five 1-minute candles, a repeated request gets the
same answer, and any date range can be served without state. The day's starting level drifts
with smooth deterministic waves around the instrument's reference price, so long ranges look
like a market rather than noise. Weekends have no candles; exchange holidays are not modelled.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Final

from marketpulse.feeds.simulator.trading_calendar import IST

SESSION_MINUTES: Final = 375
SESSION_START: Final = time(9, 15)

INTERVAL_MINUTES: Final[dict[str, int | None]] = {
    "minute": 1,
    "3minute": 3,
    "5minute": 5,
    "10minute": 10,
    "15minute": 15,
    "30minute": 30,
    "60minute": 60,
    "day": None,
}

Bar = tuple[float, float, float, float, int, int]
"""open, high, low, close, volume, oi."""


def _on_grid(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 2)


def _level(seed: int, token: int, day: date, reference: float) -> float:
    """The day's opening level: slow waves (different phases per instrument) around the
    reference, within about ±15 %."""
    n = day.toordinal()
    phase = (token % 997) / 997.0 * 2 * math.pi
    drift = 0.08 * math.sin(2 * math.pi * n / 173 + phase) + 0.05 * math.sin(
        2 * math.pi * n / 41 + 2 * phase
    )
    noise = random.Random(f"{seed}:{token}:{n}:level").uniform(-0.02, 0.02)
    return reference * (1.0 + drift + noise)


@lru_cache(maxsize=4096)
def minute_bars(
    seed: int, token: int, day: date, reference: float, tick: float, traded: bool, has_oi: bool
) -> tuple[Bar, ...]:
    """The session's 375 one-minute bars; indices (``traded=False``) have no volume."""
    rng = random.Random(f"{seed}:{token}:{day.toordinal()}")
    tick = tick or 0.05
    price = _level(seed, token, day, reference)
    step = price * 0.0006
    unit = max(1, int(5e6 / max(reference, 1.0) / SESSION_MINUTES))
    oi = int(1e6 * (1.5 + math.sin(day.toordinal() / 11.0))) if has_oi else 0
    bars: list[Bar] = []
    for _ in range(SESSION_MINUTES):
        open_ = _on_grid(price, tick)
        path = [price + rng.gauss(0.0, step) for _ in range(3)]
        price = path[-1]
        close = _on_grid(price, tick)
        high = max(open_, close, _on_grid(max(path), tick))
        low = min(open_, close, _on_grid(min(path), tick))
        volume = int(unit * (0.2 + 1.6 * rng.random())) if traded else 0
        if has_oi:
            oi = max(0, oi + int(rng.gauss(0.0, 2000.0)))
        bars.append((open_, high, low, close, volume, oi))
    return tuple(bars)


def aggregate(bars: tuple[Bar, ...]) -> Bar:
    """Consecutive bars as one: first open, extreme high and low, last close, summed volume,
    last open interest."""
    return (
        bars[0][0],
        max(b[1] for b in bars),
        min(b[2] for b in bars),
        bars[-1][3],
        sum(b[4] for b in bars),
        bars[-1][5],
    )


def trading_days(first: date, last: date) -> Iterator[date]:
    """Weekdays in ``[first, last]`` (the emulators model no exchange holidays)."""
    day = first
    while day <= last:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def candles(
    *,
    seed: int,
    token: int,
    reference: float,
    tick: float,
    traded: bool,
    has_oi: bool,
    interval: str,
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, Bar]]:
    """Candles of ``interval`` whose start lies in ``[start, end]`` (IST-aware datetimes).

    Day candles are included when their date lies in the range's dates.
    """
    size = INTERVAL_MINUTES[interval]
    out: list[tuple[datetime, Bar]] = []
    for day in trading_days(start.date(), end.date()):
        bars = minute_bars(seed, token, day, reference, tick, traded, has_oi)
        if size is None:
            out.append((datetime.combine(day, time(0), IST), aggregate(bars)))
            continue
        opening = datetime.combine(day, SESSION_START, IST)
        for first in range(0, SESSION_MINUTES, size):
            moment = opening + timedelta(minutes=first)
            if start <= moment <= end:
                out.append((moment, aggregate(bars[first : first + size])))
    return out


def format_candle(moment: datetime, bar: Bar, with_oi: bool) -> list[object]:
    """A candle as Kite's JSON array: ``[time, open, high, low, close, volume(, oi)]``."""
    row: list[object] = [moment.strftime("%Y-%m-%dT%H:%M:%S%z"), *bar[:5]]
    if with_oi:
        row.append(bar[5])
    return row
