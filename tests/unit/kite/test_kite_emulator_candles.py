"""The emulator's synthetic history: deterministic, aggregated like Kite, session-aligned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marketpulse.emulators.candles import SESSION_MINUTES, Bar, candles
from marketpulse.feeds.simulator.trading_calendar import IST

DAY_START = datetime(2024, 1, 15, 0, 0, tzinfo=IST)  # a Monday
DAY_END = datetime(2024, 1, 15, 23, 59, tzinfo=IST)


def fetch(
    interval: str, start: datetime = DAY_START, end: datetime = DAY_END, **kw: Any
) -> list[tuple[datetime, Bar]]:
    options: dict[str, Any] = {
        "seed": 42, "token": 408065, "reference": 1500.0, "tick": 0.05, "traded": True,
        "has_oi": False,
    }  # fmt: skip
    options.update(kw)
    return candles(interval=interval, start=start, end=end, **options)


def test_the_same_request_gives_the_same_candles_and_other_seeds_differ() -> None:
    assert fetch("minute") == fetch("minute")
    assert fetch("minute") != fetch("minute", seed=7)


def test_coarser_intervals_aggregate_the_minute_bars_from_0915() -> None:
    minutes = fetch("minute")
    assert len(minutes) == SESSION_MINUTES
    assert minutes[0][0] == datetime(2024, 1, 15, 9, 15, tzinfo=IST)
    assert minutes[-1][0] == datetime(2024, 1, 15, 15, 29, tzinfo=IST)
    for interval, size in (("3minute", 3), ("15minute", 15), ("60minute", 60)):
        bars = fetch(interval)
        assert len(bars) == -(-SESSION_MINUTES // size)
        for i, (moment, (o, h, lo, c, v, _)) in enumerate(bars):
            group = [bar for _, bar in minutes[i * size : (i + 1) * size]]
            assert moment == minutes[i * size][0]
            assert (o, c, v) == (group[0][0], group[-1][3], sum(b[4] for b in group))
            assert (h, lo) == (max(b[1] for b in group), min(b[2] for b in group))
    (day,) = fetch("day")
    assert day[0] == DAY_START and day[1][4] == sum(b[4] for _, b in minutes)


def test_prices_are_on_the_tick_grid_and_bars_are_consistent() -> None:
    for _, (o, h, lo, c, v, _) in fetch("minute"):
        assert lo <= min(o, c) <= max(o, c) <= h and v > 0
        assert all(abs(p * 20 - round(p * 20)) < 1e-6 for p in (o, h, lo, c))


def test_weekends_have_no_candles_and_indices_no_volume() -> None:
    saturday = datetime(2024, 1, 13, 0, 0, tzinfo=IST)
    assert fetch("day", saturday, saturday.replace(hour=23)) == []
    assert {bar[4] for _, bar in fetch("5minute", traded=False)} == {0}


def test_the_range_bounds_candle_starts_inclusively() -> None:
    start = datetime(2024, 1, 15, 10, 0, tzinfo=IST)
    bars = fetch("5minute", start, start.replace(minute=30))
    assert [m.minute for m, _ in bars] == [0, 5, 10, 15, 20, 25, 30]
