"""SmartAPI quote and candle JSON ↔ Tick/Candle; request windows per interval."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from marketpulse.feeds.angelone.market_data import (
    MAX_DAYS,
    Interval,
    Unfetched,
    candle_body,
    format_feed_time,
    merge_candles,
    parse_candles,
    parse_feed_time,
    parse_quotes,
    plan_chunks,
    quote_body,
)
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import Candle, DepthLevel, Mode, Tick

TS_RECV = 1_705_293_930_200_000_000


def test_quote_request_groups_tokens_by_api_exchange_and_files_indices_under_cash() -> None:
    body = quote_body(Mode.QUOTE, [("NSE", "2885"), ("NSE_INDEX", "99926000"), ("NFO", "43650")])
    assert body == {"mode": "OHLC", "exchangeTokens": {"NSE": ["2885", "99926000"],
                                                       "NFO": ["43650"]}}  # fmt: skip


FULL_ITEM = {
    "exchange": "NSE", "tradingSymbol": "RELIANCE-EQ", "symbolToken": "2885", "ltp": 2500.75,
    "open": 2480.0, "high": 2515.0, "low": 2475.5, "close": 2470.0, "lastTradeQty": 15,
    "exchFeedTime": "15-Jan-2024 10:15:30", "exchTradeTime": "15-Jan-2024 10:15:25",
    "netChange": 30.75, "percentChange": 1.24, "avgPrice": 2498.1, "tradeVolume": 3456789,
    "opnInterest": 0, "lowerCircuit": 2223.0, "upperCircuit": 2717.0, "totBuyQuan": 125000,
    "totSellQuan": 98000, "52WeekLow": 1900.0, "52WeekHigh": 2600.0,
    "depth": {"buy": [{"price": 2500.5, "quantity": 75, "orders": 3},
                      {"price": 0.0, "quantity": 0, "orders": 0}],
              "sell": [{"price": 2501.0, "quantity": 50, "orders": 2}]},
}  # fmt: skip


def test_full_quote_becomes_a_full_tick_with_derived_change_and_ist_times_in_utc() -> None:
    ticks, missing = parse_quotes({"fetched": [FULL_ITEM], "unfetched": []}, Mode.FULL,
                                  [("NSE", "2885")], TS_RECV)  # fmt: skip
    assert missing == []
    expected = Tick(
        "angelone", "2885", "NSE", "full", 2500.75, ltq=15, atp=2498.1, volume=3456789,
        total_buy_qty=125000, total_sell_qty=98000, open=2480.0, high=2515.0, low=2475.5,
        close=2470.0, change=2500.75 - 2470.0, change_pct=(2500.75 - 2470.0) * 100.0 / 2470.0,
        oi=0, upper_circuit=2717.0, lower_circuit=2223.0, high_52w=2600.0, low_52w=1900.0,
        ts_exchange=1_705_293_930_000, ts_last_trade=1_705_293_925_000, ts_recv=TS_RECV,
        bids=[DepthLevel(2500.5, 75, 3)], asks=[DepthLevel(2501.0, 50, 2)],
    )  # fmt: skip
    assert ticks == [expected]


def test_ltp_and_ohlc_quotes_carry_only_their_fields_and_indices_get_their_segment_back() -> None:
    index = {"exchange": "NSE", "symbolToken": "99926000", "ltp": 21500.55, "open": 21400.0,
             "high": 21550.0, "low": 21390.0, "close": 21450.0}  # fmt: skip
    unknown = {"exchange": "NSE", "symbolToken": "1", "message": "Invalid Token"}
    data = {"fetched": [index], "unfetched": [unknown]}
    requested = [("NSE_INDEX", "99926000"), ("NSE", "1")]
    (ltp,), missing = parse_quotes(data, Mode.LTP, requested, TS_RECV)
    assert ltp == Tick("angelone", "99926000", "NSE_INDEX", "ltp", 21500.55, ts_recv=TS_RECV)
    assert missing == [Unfetched("NSE", "1", "Invalid Token")]
    (ohlc,), _ = parse_quotes(data, Mode.QUOTE, requested, TS_RECV)
    assert (ohlc.mode, ohlc.open, ohlc.close, ohlc.volume) == ("quote", 21400.0, 21450.0, None)


def test_feed_times_round_trip_through_the_apis_spelling() -> None:
    ts = 1_705_293_930_000  # 2024-01-15 10:15:30 IST
    assert format_feed_time(ts) == "15-Jan-2024 10:15:30"
    assert parse_feed_time("15-Jan-2024 10:15:30") == ts
    assert parse_feed_time("15-JAN-2024 10:15:30") == ts
    for bad in ("", None, "yesterday", "15/01/2024 10:15:30"):
        assert parse_feed_time(bad) is None


@pytest.mark.parametrize("interval", list(Interval))
def test_request_windows_respect_each_intervals_limit_and_leave_no_gap_or_overlap(
    interval: Interval,
) -> None:
    start = datetime(2023, 1, 2, 9, 15, tzinfo=IST)
    end = start + timedelta(days=interval.max_days * 2 + 10, hours=6)
    windows = plan_chunks(start, end, interval)
    assert len(windows) == 3
    assert windows[0][0] == start and windows[-1][1] == end
    for first, last in windows:
        assert last - first <= timedelta(days=MAX_DAYS[interval])
    for (_, previous_end), (next_start, _) in itertools.pairwise(windows):
        assert next_start - previous_end == timedelta(minutes=1)


def test_a_short_range_is_one_request_and_a_reversed_range_an_error() -> None:
    start = datetime(2024, 1, 15, 9, 15, 42, tzinfo=IST)
    end = start + timedelta(hours=3)
    assert plan_chunks(start, end, Interval.ONE_MINUTE) == [
        (start.replace(second=0), end.replace(second=0))
    ]
    with pytest.raises(ValueError, match="before the start"):
        plan_chunks(end, start, Interval.ONE_DAY)


def test_candle_request_uses_ist_minutes_whatever_the_callers_timezone() -> None:
    start = datetime(2024, 1, 15, 3, 45, tzinfo=UTC)  # 09:15 IST
    body = candle_body("NSE_INDEX", "99926000", Interval.FIVE_MINUTE, start,
                       start + timedelta(hours=6, minutes=15))  # fmt: skip
    assert body == {"exchange": "NSE", "symboltoken": "99926000", "interval": "FIVE_MINUTE",
                    "fromdate": "2024-01-15 09:15", "todate": "2024-01-15 15:30"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5m", Interval.FIVE_MINUTE), ("FIVE_MINUTE", Interval.FIVE_MINUTE),
     ("one_day", Interval.ONE_DAY), ("1H", Interval.ONE_HOUR)],
)  # fmt: skip
def test_intervals_accept_the_canonical_and_the_api_spelling(text: str, expected: Interval) -> None:
    assert Interval.parse(text) is expected


def test_unknown_interval_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="FIFTEEN_MINUTE"):
        Interval.parse("7m")


def test_candles_are_utc_closed_unless_their_bucket_is_still_running() -> None:
    rows = [["2024-01-15T09:15:00+05:30", 2480.0, 2490.5, 2475.0, 2488.0, 12000],
            ["2024-01-15T09:20:00+05:30", 2488.0, 2489.0, 2481.0, 2482.5, 9000.0],
            ["garbage"]]  # fmt: skip
    now = datetime(2024, 1, 15, 9, 22, tzinfo=IST)
    first, second = parse_candles(rows, "RELIANCE.NSE", Interval.FIVE_MINUTE, now)
    assert first == Candle("RELIANCE.NSE", "5m", datetime(2024, 1, 15, 3, 45, tzinfo=UTC),
                           2480.0, 2490.5, 2475.0, 2488.0, 12000, status="closed")  # fmt: skip
    assert (second.volume, second.status) == (9000, "live")


def test_merging_windows_orders_by_start_and_keeps_one_candle_per_start() -> None:
    def candle(minute: int, close: float) -> Candle:
        start = datetime(2024, 1, 15, 3, minute, tzinfo=UTC)
        return Candle("X.NSE", "1m", start, 1.0, 1.0, 1.0, close)

    merged = merge_candles([[candle(47, 1.0), candle(45, 1.0)], [candle(47, 2.0)]])
    assert [(c.start.minute, c.close) for c in merged] == [(45, 1.0), (47, 2.0)]
