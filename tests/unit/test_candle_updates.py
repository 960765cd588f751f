"""1m partial candles folded in Python, and the live candle updates packed as raw RESP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hiredis
import msgspec

from marketpulse.bus.candles import newest_candles, pack_candle_updates
from marketpulse.bus.resp import command_prefix
from marketpulse.model import Candle
from marketpulse.store.candles import MINUTE_COLUMNS, TickFields, minute_partials

T0 = datetime(2026, 3, 2, 3, 45, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fields(
    when: datetime, ltp: float, volume: int | None = None, *, oi: int | None = None,
    ts_recv: int | None = 0, symbol: str = "RELIANCE.NSE", exchange: str = "NSE",
) -> TickFields:  # fmt: skip
    return (when, symbol, exchange, ltp, volume, oi, ts_recv)


def partials(ticks: list[TickFields]) -> list[dict[str, object]]:
    return [dict(zip(MINUTE_COLUMNS, p, strict=True)) for p in minute_partials(ticks)]


def test_a_minute_takes_open_and_close_by_tick_time_not_arrival_order() -> None:
    (p,) = partials([fields(at(30), 101.0, 1500), fields(at(5), 100.0, 1000),
                     fields(at(50), 99.0, 1800), fields(at(20), 103.0)])  # fmt: skip
    assert (p["open"], p["high"], p["low"], p["close"], p["ticks"]) == (100.0, 103.0, 99.0, 99.0, 4)
    assert (p["first_at"], p["last_at"]) == (at(5), at(50))
    assert (p["cum_low"], p["cum_high"]) == (1000, 1800)
    assert p["start"] == T0


def test_ticks_split_by_symbol_and_clock_minute() -> None:
    got = partials([fields(at(59.9), 1.0), fields(at(60), 2.0), fields(at(61), 3.0, symbol="X")])
    assert [(p["symbol"], p["start"], p["ticks"]) for p in got] == [
        ("RELIANCE.NSE", T0, 1), ("RELIANCE.NSE", at(60), 1), ("X", at(60), 1)
    ]  # fmt: skip


def test_same_exchange_time_is_ordered_by_receive_time_with_a_missing_one_last() -> None:
    (p,) = partials([fields(at(10), 2.0, ts_recv=None), fields(at(10), 1.0, ts_recv=5),
                     fields(at(10), 3.0, ts_recv=9)])  # fmt: skip
    assert (p["open"], p["close"]) == (1.0, 2.0)


def test_oi_is_the_latest_known_and_zero_or_missing_volume_is_no_cumulative_volume() -> None:
    (p,) = partials([fields(at(1), 1.0, 0, oi=700), fields(at(2), 1.0, None, oi=750),
                     fields(at(3), 1.0, None)])  # fmt: skip
    assert (p["oi"], p["cum_low"], p["cum_high"]) == (750, None, None)


def test_ticks_without_a_positive_price_make_no_candle() -> None:
    assert partials([fields(at(1), 0.0, 10), fields(at(2), -1.0)]) == []


def candle(interval: str, symbol: str, minute: int, close: float) -> Candle:
    start = T0 + timedelta(minutes=minute)
    return Candle(symbol, interval, start, close, close, close, close, ticks=1)


def test_only_the_newest_candle_of_each_channel_is_published() -> None:
    updates = [candle("1m", "A", 1, 10.0), candle("1m", "A", 0, 9.0),  # late correction
               candle("5m", "A", 0, 10.0), candle("1m", "B", 0, 5.0),
               candle("1m", "B", 0, 6.0)]  # fmt: skip
    assert [(c.interval, c.symbol, c.close) for c in newest_candles(updates)] == [
        ("1m", "A", 10.0), ("5m", "A", 10.0), ("1m", "B", 6.0)
    ]  # fmt: skip


def test_updates_pack_into_xadd_commands_the_hub_can_route() -> None:
    prefix = command_prefix(10, b"XADD", b"mp:candles", b"MAXLEN", b"~", b"10000", b"*", b"k")
    first, second = candle("1m", "A", 0, 9.0), candle("1m", "A", 1, 10.0)
    payload, count = pack_candle_updates(prefix, [first, second, candle("1h", "B", 0, 5.0)])
    reader = hiredis.Reader()
    reader.feed(payload)
    commands = []
    while (parsed := reader.gets()) is not False:
        commands.append(parsed)
    assert count == len(commands) == 2
    assert commands[0][:8] == [b"XADD", b"mp:candles", b"MAXLEN", b"~", b"10000", b"*", b"k",
                               b"candles:1m:A"]  # fmt: skip
    assert commands[0][8] == b"t"
    assert msgspec.json.decode(commands[0][9], type=Candle) == second
    assert commands[1][7] == b"candles:1h:B"
