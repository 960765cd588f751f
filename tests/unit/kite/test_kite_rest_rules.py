"""The REST client's pure rules: date ranges cut to Kite's limits, times, candle rows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from marketpulse.feeds.kite.rest import (
    HISTORICAL_INTERVALS,
    HistoricalCandle,
    historical_chunks,
    ist_to_epoch_ms,
    parse_candle,
    to_ist,
)
from marketpulse.feeds.simulator.trading_calendar import IST


@pytest.mark.parametrize("interval", list(HISTORICAL_INTERVALS))
def test_a_range_is_cut_into_contiguous_chunks_within_the_interval_limit(interval: str) -> None:
    limit = timedelta(days=HISTORICAL_INTERVALS[interval])
    start, end = datetime(2015, 1, 1, 9, 15), datetime(2024, 12, 31, 15, 30)
    chunks = historical_chunks(start, end, interval)
    assert chunks[0][0] == start.replace(tzinfo=IST) and chunks[-1][1] == end.replace(tzinfo=IST)
    for (_, b), (c, _) in itertools.pairwise(chunks):
        assert c - b == timedelta(seconds=1)  # no gap, no overlap at the API's precision
    assert all(b - a < limit for a, b in chunks)
    assert len(chunks) == -(-(end - start + timedelta(seconds=1)) // limit)


def test_kites_limits_per_interval() -> None:
    assert HISTORICAL_INTERVALS == {
        "minute": 60, "3minute": 100, "5minute": 100, "10minute": 100, "15minute": 200,
        "30minute": 200, "60minute": 400, "day": 2000,
    }  # fmt: skip


def test_short_and_single_instant_ranges_are_one_chunk() -> None:
    moment = datetime(2024, 1, 15, 9, 15)
    assert historical_chunks(moment, moment, "minute") == [(to_ist(moment), to_ist(moment))]
    assert len(historical_chunks(moment, moment + timedelta(days=59), "minute")) == 1
    assert len(historical_chunks(moment, moment + timedelta(days=60), "minute")) == 2


def test_bad_ranges_and_intervals_are_refused() -> None:
    moment = datetime(2024, 1, 15)
    with pytest.raises(ValueError, match="unknown Kite candle interval 'week'; use one of minute"):
        historical_chunks(moment, moment, "week")
    with pytest.raises(ValueError, match=r"ends .* before it starts"):
        historical_chunks(moment, moment - timedelta(seconds=1), "day")


def test_naive_times_are_india_time_and_aware_ones_are_converted() -> None:
    assert to_ist(datetime(2024, 1, 15, 9, 15, 0, 999)) == datetime(2024, 1, 15, 9, 15, tzinfo=IST)
    utc = datetime(2024, 1, 15, 3, 45, tzinfo=UTC)
    assert to_ist(utc) == datetime(2024, 1, 15, 9, 15, tzinfo=IST)


def test_kite_wall_clock_times_become_utc_epoch_ms() -> None:
    assert ist_to_epoch_ms("2024-01-15 10:15:30") == 1_705_293_930_000
    assert ist_to_epoch_ms("2024-01-15T10:15:30") == 1_705_293_930_000
    assert ist_to_epoch_ms(None) is None and ist_to_epoch_ms("") is None
    assert ist_to_epoch_ms("yesterday") is None


def test_candle_rows_with_and_without_open_interest() -> None:
    row = ["2024-01-15T09:15:00+0530", 1386.4, 1388, 1381.05, 1385.1, 788]
    assert parse_candle(row) == HistoricalCandle(
        datetime(2024, 1, 15, 9, 15, tzinfo=IST), 1386.4, 1388.0, 1381.05, 1385.1, 788
    )
    assert parse_candle([*row, 13_500]).oi == 13_500
