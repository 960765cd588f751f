"""The emulator's synthetic history is consistent across intervals and stable across requests."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from marketpulse.emulators.angelone.candles import candles
from marketpulse.feeds.angelone.market_data import Interval
from marketpulse.feeds.simulator.trading_calendar import IST

DAY_START = datetime(2024, 1, 15, 0, 0, tzinfo=IST)  # a Monday
DAY_END = DAY_START + timedelta(hours=23, minutes=59)
NOW = datetime(2024, 2, 1, 12, 0, tzinfo=IST)


def history(interval: Interval, start: datetime = DAY_START, end: datetime = DAY_END,
            now: datetime = NOW) -> list[list[object]]:  # fmt: skip
    return candles(42, "487552", 1545.0, 0.05, interval, start, end, now)


def aggregate(rows: list[list[object]]) -> tuple[object, ...]:
    return (rows[0][1], max(r[2] for r in rows), min(r[3] for r in rows), rows[-1][4],  # type: ignore[type-var]
            sum(r[5] for r in rows))  # type: ignore[misc]  # fmt: skip


@pytest.mark.parametrize("interval", [i for i in Interval if i is not Interval.ONE_MINUTE])
def test_every_interval_is_exactly_the_aggregate_of_its_minutes(interval: Interval) -> None:
    minutes = history(Interval.ONE_MINUTE)
    assert len(minutes) == 375
    assert minutes[0][0] == "2024-01-15T09:15:00+05:30"
    assert minutes[-1][0] == "2024-01-15T15:29:00+05:30"
    size = 375 if interval is Interval.ONE_DAY else int(interval.length.total_seconds() // 60)
    bigger = history(interval)
    assert len(bigger) == -(-375 // size)
    for index, row in enumerate(bigger):
        assert tuple(row[1:]) == aggregate(minutes[index * size : (index + 1) * size])
    if interval is Interval.ONE_DAY:
        assert bigger[0][0] == "2024-01-15T00:00:00+05:30"


def test_candles_obey_ohlc_invariants_and_sit_on_the_tick_grid() -> None:
    for _, open_, high, low, close, volume in history(Interval.ONE_MINUTE):
        assert low <= min(open_, close) <= max(open_, close) <= high  # type: ignore[operator]
        assert volume > 0  # type: ignore[operator]
        for price in (open_, high, low, close):
            assert abs(round(price / 0.05) * 0.05 - price) < 1e-9  # type: ignore[operator]


def test_history_is_deterministic_skips_weekends_and_stops_at_now() -> None:
    week = (DAY_START, DAY_START + timedelta(days=6, hours=23))  # Monday to Sunday
    assert history(Interval.ONE_DAY, *week) == history(Interval.ONE_DAY, *week)
    assert len(history(Interval.ONE_DAY, *week)) == 5
    mid_session = datetime(2024, 1, 15, 10, 0, 30, tzinfo=IST)
    rows = history(Interval.FIFTEEN_MINUTE, now=mid_session)
    assert [r[0][11:16] for r in rows] == ["09:15", "09:30", "09:45", "10:00"]
    partial = rows[-1]
    first_minute = history(Interval.ONE_MINUTE, now=mid_session)[-1]
    assert partial[1:] == first_minute[1:]  # the live candle holds only what has happened
