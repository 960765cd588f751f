"""Candles built from scripted tick sequences, on real PostgreSQL.

Times are NSE wall clock (IST); the candle starts asserted are what a trader expects to see on a
chart: 1m bars from 09:15, 5m at 09:15/09:20, hourly at 09:15/10:15, the day bar at 09:15.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from marketpulse.model import Tick
from marketpulse.store.candles import close_due_candles, rollup_candles
from marketpulse.store.partitions import PartitionManager
from marketpulse.store.ticks import Row, copy_ticks_with_candles, row_days, tick_row

IST = timezone(timedelta(hours=5, minutes=30))
DAY = datetime(2026, 3, 2, tzinfo=IST)  # a Monday
_ids = itertools.count(1)


def at(hhmmss: str, day: datetime = DAY) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return day.replace(hour=h, minute=m, second=s)


def tick(
    when: datetime,
    ltp: float,
    volume: int | None = None,
    *,
    symbol: str = "RELIANCE.NSE",
    exchange: str = "NSE",
    oi: int | None = None,
) -> Row:
    ms = int(when.timestamp() * 1000)
    t = Tick("kite", "738561", exchange, "full", ltp, symbol=symbol, volume=volume, oi=oi,
             ts_exchange=ms, ts_recv=ms * 1_000_000)  # fmt: skip
    return tick_row(t, "mp:ticks:0", f"{ms}-{next(_ids)}")


async def store(pool: asyncpg.Pool, rows: list[Row], *, rollup: bool = True) -> int:
    """Store a batch as the store worker does; ``rollup`` also rolls it up into 5m…1d at once
    (the worker does that every CANDLE_ROLLUP_SECONDS)."""
    async with pool.acquire() as conn:
        await PartitionManager(2, 0).ensure(conn, row_days(rows))
        stored, _ = await copy_ticks_with_candles(conn, rows)
        if rollup:
            await rollup_candles(conn)
    return stored


async def candles(pool: asyncpg.Pool, interval: str, symbol: str = "RELIANCE.NSE") -> list[tuple]:
    rows = await pool.fetch(
        "SELECT start, open, high, low, close, volume, ticks FROM candles "
        "WHERE symbol = $1 AND interval = $2 ORDER BY start",
        symbol,
        interval,
    )
    return [
        (r["start"].astimezone(IST).strftime("%H:%M"), r["open"], r["high"], r["low"],
         r["close"], r["volume"], r["ticks"])
        for r in rows
    ]  # fmt: skip


async def test_buckets_align_to_the_nse_session_open_in_every_interval(
    pool: asyncpg.Pool,
) -> None:
    await store(pool, [
        tick(at("09:15:10"), 100.0, 1000), tick(at("09:15:50"), 101.0, 1500),
        tick(at("09:16:05"), 99.5, 1800), tick(at("09:19:59"), 100.5, 2000),
        tick(at("09:20:00"), 102.0, 2600), tick(at("10:14:59"), 103.0, 3000),
        tick(at("10:15:00"), 104.0, 3100),
    ])  # fmt: skip
    assert await candles(pool, "1m") == [
        ("09:15", 100.0, 101.0, 100.0, 101.0, 1500, 2),
        ("09:16", 99.5, 99.5, 99.5, 99.5, 300, 1),
        ("09:19", 100.5, 100.5, 100.5, 100.5, 200, 1),
        ("09:20", 102.0, 102.0, 102.0, 102.0, 600, 1),
        ("10:14", 103.0, 103.0, 103.0, 103.0, 400, 1),
        ("10:15", 104.0, 104.0, 104.0, 104.0, 100, 1),
    ]
    assert await candles(pool, "5m") == [
        ("09:15", 100.0, 101.0, 99.5, 100.5, 2000, 4),
        ("09:20", 102.0, 102.0, 102.0, 102.0, 600, 1),
        ("10:10", 103.0, 103.0, 103.0, 103.0, 400, 1),
        ("10:15", 104.0, 104.0, 104.0, 104.0, 100, 1),
    ]
    assert [c[0] for c in await candles(pool, "15m")] == ["09:15", "10:00", "10:15"]
    assert await candles(pool, "1h") == [
        ("09:15", 100.0, 103.0, 99.5, 103.0, 3000, 6),
        ("10:15", 104.0, 104.0, 104.0, 104.0, 100, 1),
    ]
    day = await pool.fetchrow("SELECT * FROM candles WHERE interval = '1d'")
    assert day["start"] == at("09:15:00").astimezone(UTC)
    assert (day["open"], day["high"], day["low"], day["close"], day["volume"]) == (
        100.0, 104.0, 99.5, 104.0, 3100
    )  # fmt: skip
    assert str(day["trading_day"]) == "2026-03-02"


async def test_a_late_tick_corrects_its_candle_and_the_next_ones_volume(
    pool: asyncpg.Pool,
) -> None:
    await store(pool, [tick(at("09:15:10"), 100.0, 1000), tick(at("09:16:05"), 99.0, 1800)])
    await store(pool, [tick(at("09:15:30"), 105.0, 1600)])  # arrives after 09:16's tick
    assert await candles(pool, "1m") == [
        ("09:15", 100.0, 105.0, 100.0, 105.0, 1600, 2),
        ("09:16", 99.0, 99.0, 99.0, 99.0, 200, 1),
    ]
    # Earlier than the candle's first tick: it becomes the open, the close stays.
    await store(pool, [tick(at("09:16:01"), 98.0, 1700)])
    assert (await candles(pool, "1m"))[1] == ("09:16", 98.0, 99.0, 98.0, 99.0, 200, 2)


async def test_a_redelivered_batch_changes_nothing(pool: asyncpg.Pool) -> None:
    rows = [tick(at("09:15:10"), 100.0, 1000), tick(at("09:15:40"), 101.0, 1200)]
    assert await store(pool, rows) == 2
    before = await candles(pool, "1m")
    assert await store(pool, rows) == 0
    assert await candles(pool, "1m") == before == [("09:15", 100.0, 101.0, 100.0, 101.0, 1200, 2)]


async def test_volume_restarts_with_each_trading_day(pool: asyncpg.Pool) -> None:
    tuesday = DAY + timedelta(days=1)
    await store(
        pool, [tick(at("15:29:30"), 100.0, 90_000), tick(at("09:15:05", tuesday), 101.0, 500)]
    )
    await store(pool, [tick(at("09:16:00", tuesday), 102.0, 800)])
    days = await pool.fetch(
        "SELECT trading_day, volume FROM candles WHERE interval = '1d' ORDER BY start"
    )
    assert [(str(d["trading_day"]), d["volume"]) for d in days] == [
        ("2026-03-02", 90_000), ("2026-03-03", 800)
    ]  # fmt: skip
    # The day bar's volume is the day's cumulative volume; but Monday's only tick came
    # mid-session with nothing seen before it, so its minute gets no invented volume.
    assert [c[5] for c in await candles(pool, "1m")] == [0, 500, 300]


async def test_an_index_without_volume_gets_price_candles_with_zero_volume(
    pool: asyncpg.Pool,
) -> None:
    await store(pool, [
        tick(at("09:15:01"), 22000.5, symbol="NIFTY50.NSE_INDEX", exchange="NSE_INDEX"),
        tick(at("09:15:31"), 22010.0, symbol="NIFTY50.NSE_INDEX", exchange="NSE_INDEX"),
    ])  # fmt: skip
    assert await candles(pool, "1m", "NIFTY50.NSE_INDEX") == [
        ("09:15", 22000.5, 22010.0, 22000.5, 22010.0, 0, 2)
    ]


async def test_open_interest_is_the_latest_value(pool: asyncpg.Pool) -> None:
    await store(
        pool, [tick(at("09:15:01"), 10.0, 5, oi=700), tick(at("09:15:31"), 11.0, 9, oi=750)]
    )
    oi = await pool.fetchval("SELECT oi FROM candles WHERE interval = '1m'")
    assert oi == 750


async def test_other_exchanges_align_to_their_own_session(pool: asyncpg.Pool) -> None:
    new_york = timezone(timedelta(hours=-5))
    when = datetime(2026, 3, 2, 9, 31, 20, tzinfo=new_york)
    await store(pool, [tick(when, 180.0, 100, symbol="AAPL.NASDAQ", exchange="NASDAQ")])
    rows = await pool.fetch(
        "SELECT interval, start FROM candles WHERE symbol = 'AAPL.NASDAQ' ORDER BY interval"
    )
    starts = {r["interval"]: r["start"].astimezone(new_york).strftime("%H:%M") for r in rows}
    assert starts == {"1m": "09:31", "5m": "09:30", "15m": "09:30", "1h": "09:30", "1d": "09:30"}


async def test_ended_candles_close_and_finished_days_enter_the_daily_history(
    pool: asyncpg.Pool,
) -> None:
    tuesday = DAY + timedelta(days=1)
    await store(pool, [
        tick(at("09:15:10"), 100.0, 1000), tick(at("15:29:00"), 104.0, 5000),
        tick(at("09:15:10", tuesday), 105.0, 700), tick(at("15:29:50", tuesday), 103.0, 2700),
    ])  # fmt: skip
    async with pool.acquire() as conn:
        await close_due_candles(conn, 2.0)
    assert await pool.fetchval("SELECT count(*) FROM candles WHERE status = 'live'") == 0
    daily = await pool.fetch("SELECT * FROM price_history_daily ORDER BY date")
    assert [
        (str(r["date"]), r["open"], r["high"], r["low"], r["close"], r["volume"],
         r["previous_close"])
        for r in daily
    ] == [
        ("2026-03-02", 100.0, 104.0, 100.0, 104.0, 5000, None),
        ("2026-03-03", 105.0, 105.0, 103.0, 103.0, 2700, 104.0),
    ]  # fmt: skip


async def test_a_candle_of_the_current_minute_stays_live(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    await store(pool, [tick(now, 100.0, 10)])
    async with pool.acquire() as conn:
        await close_due_candles(conn, 2.0)
    status = await pool.fetchval("SELECT status FROM candles WHERE interval = '1m'")
    assert status == "live"


async def test_after_a_holiday_the_day_bar_follows_the_last_trading_day(
    pool: asyncpg.Pool,
) -> None:
    # Monday 2 March is an exchange holiday: Friday's close is Tuesday's previous close, and
    # Tuesday's volume starts from zero rather than from Friday's cumulative volume.
    await pool.execute("UPDATE exchanges SET holidays = ARRAY[$1::date] WHERE code = 'NSE'",
                       DAY.date())  # fmt: skip
    friday, tuesday = DAY - timedelta(days=3), DAY + timedelta(days=1)
    await store(pool, [
        tick(at("09:15:10", friday), 100.0, 1000), tick(at("15:29:00", friday), 104.0, 9000),
        tick(at("09:15:20", tuesday), 106.0, 400), tick(at("15:29:10", tuesday), 107.0, 2500),
    ])  # fmt: skip
    async with pool.acquire() as conn:
        await close_due_candles(conn, 2.0)
    daily = await pool.fetch("SELECT date, close, volume, previous_close FROM "
                             "price_history_daily ORDER BY date")  # fmt: skip
    assert [(str(r["date"]), r["close"], r["volume"], r["previous_close"]) for r in daily] == [
        ("2026-02-27", 104.0, 9000, None),
        ("2026-03-03", 107.0, 2500, 104.0),
    ]
    first_minutes = await pool.fetch(
        "SELECT trading_day, volume FROM candles WHERE interval = '1m' AND start = ANY($1) "
        "ORDER BY start",
        [at("09:15:00", friday), at("09:15:00", tuesday)],
    )  # fmt: skip
    assert [(str(r["trading_day"]), r["volume"]) for r in first_minutes] == [
        ("2026-02-27", 1000), ("2026-03-03", 400)
    ]  # fmt: skip


async def test_candle_pages_keep_room_for_heap_only_updates(pool: asyncpg.Pool) -> None:
    # Every batch rewrites ~5 candle rows per instrument; free page space lets PostgreSQL
    # update them without touching the indexes (migration 0007).
    options = await pool.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'candles'")
    assert "fillfactor=50" in (options or [])
