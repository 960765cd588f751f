"""The set-based candle merge against candles computed from scratch.

Ticks of two instruments over two trading days are stored in shuffled, overlapping batches
(late ticks, batches spanning several buckets, a day rollover, redelivered batches). However
they arrive, the stored candles must equal candles built in one pass from the whole tick set by
the documented rules — which is what the merge computed before it became incremental.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import asyncpg

from marketpulse.store.candles import ROLLUP_LOCK, rollup_candles
from marketpulse.store.ticks import Row
from tests.integration.test_candles import DAY, IST, at, store, tick

_STEPS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 0}
_OPEN = time(9, 15)


@dataclass
class _Tick:
    when: datetime
    ltp: float
    volume: int | None
    symbol: str
    oi: int | None = None


def _bucket(when: datetime, step: int) -> tuple[datetime, bool]:
    """NSE bucket start of ``when`` and whether it is the session's first bucket."""
    local = when.astimezone(IST)
    open_at = datetime.combine(local.date(), _OPEN, IST)
    if step == 0:
        return open_at, True
    minute = local.replace(second=0, microsecond=0)
    start = open_at + timedelta(
        seconds=step * math.floor((minute - open_at).total_seconds() / step)
    )
    return start, start <= open_at


def _expected(ticks: list[_Tick]) -> dict[tuple[str, str, str], tuple[object, ...]]:
    """Candles from the whole tick set in one pass: OHLC from the price in time order, OI the
    latest, volume from cumulative day volume against the previous candle of the same day."""
    out: dict[tuple[str, str, str], tuple[object, ...]] = {}
    for symbol in {t.symbol for t in ticks}:
        for interval, step in _STEPS.items():
            groups: dict[datetime, list[_Tick]] = {}
            first: dict[datetime, bool] = {}
            for t in sorted((t for t in ticks if t.symbol == symbol), key=lambda t: t.when):
                start, session_first = _bucket(t.when, step)
                groups.setdefault(start, []).append(t)
                first[start] = session_first
            previous: tuple[object, int | None] | None = None  # (trading day, cum_high)
            for start in sorted(groups):
                group = groups[start]
                cums = [t.volume for t in group if t.volume]
                low, high = (min(cums), max(cums)) if cums else (None, None)
                day = start.astimezone(IST).date()
                if high is None:
                    volume = 0
                else:
                    if previous is not None and previous[0] == day:
                        base = previous[1] if previous[1] is not None else low
                    else:
                        base = 0 if first[start] else low
                    assert base is not None
                    volume = max(0, high - base)
                ois = [t.oi for t in group if t.oi is not None]
                key = (symbol, interval, start.astimezone(UTC).isoformat())
                prices = [t.ltp for t in group]
                oi = ois[-1] if ois else None
                out[key] = (prices[0], max(prices), min(prices), prices[-1], volume, oi, len(group))
                previous = (day, high)
    return out


def _script() -> list[_Tick]:
    rng = random.Random(11)
    ticks: list[_Tick] = []
    for day, symbols in ((DAY, ("RELIANCE.NSE", "INFY.NSE")), (DAY + timedelta(days=1),
                                                                ("RELIANCE.NSE",))):  # fmt: skip
        for symbol in symbols:
            # INFY starts mid-morning: nothing before it that day, so no invented volume.
            when = at("09:14:30", day) if symbol == "RELIANCE.NSE" else at("10:02:10", day)
            cumulative = 0
            while when < at("11:40:00", day):
                cumulative += rng.randrange(1, 400)
                volume = None if rng.random() < 0.1 else cumulative
                oi = 5000 + rng.randrange(100) if symbol == "RELIANCE.NSE" else None
                ticks.append(_Tick(when, round(100 + rng.uniform(-5, 5), 2), volume, symbol, oi))
                when += timedelta(seconds=rng.randrange(5, 170))
    return ticks


def _row(t: _Tick) -> Row:
    return tick(t.when, t.ltp, t.volume, symbol=t.symbol, oi=t.oi)


async def _stored(pool: asyncpg.Pool) -> dict[tuple[str, str, str], tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT symbol, interval, start, open, high, low, close, volume, oi, ticks FROM candles"
    )
    return {
        (r["symbol"], r["interval"], r["start"].astimezone(UTC).isoformat()):
            (r["open"], r["high"], r["low"], r["close"], r["volume"], r["oi"], r["ticks"])
        for r in rows
    }  # fmt: skip


def _batches(rows: list[Row]) -> list[list[Row]]:
    order = list(range(len(rows)))
    rng = random.Random(3)
    # Mostly in order, but every window of 40 ticks arrives shuffled (late ticks across
    # bucket boundaries, batches spanning several minutes and the day rollover).
    for i in range(0, len(order), 40):
        window = order[i : i + 40]
        rng.shuffle(window)
        order[i : i + 40] = window
    batches: list[list[Row]] = []
    i = 0
    while i < len(order):
        size = rng.randrange(1, 60)
        batches.append([rows[j] for j in order[i : i + size]])
        i += size
    return batches


async def test_rolling_up_only_every_few_batches_gives_the_same_candles(
    pool: asyncpg.Pool,
) -> None:
    """The store rolls 1m up into 5m…1d on a timer, not per batch: however many batches (with
    late ticks across bucket and day boundaries) queue between two roll-ups, the result is the
    one-pass build."""
    ticks = _script()
    batches = _batches([_row(t) for t in ticks])
    async with pool.acquire() as conn:
        for n, batch in enumerate(batches):
            await store(pool, batch, rollup=False)
            if n % 9 == 8:
                await rollup_candles(conn)
        await rollup_candles(conn)
        assert await conn.fetchval("SELECT count(*) FROM candle_rollup_queue") == 0
    assert await _stored(pool) == _expected(ticks)


async def test_shuffled_batches_with_late_ticks_and_redelivery_equal_a_one_pass_build(
    pool: asyncpg.Pool,
) -> None:
    ticks = _script()
    rows = [_row(t) for t in ticks]
    batches = _batches(rows)
    stored = 0
    for n, batch in enumerate(batches):
        stored += await store(pool, batch)
        if n % 7 == 3 and n + 1 < len(
            batches
        ):  # a redelivered batch, and one mixing old and new entries
            assert await store(pool, batch) == 0
            stored += await store(pool, [*batches[n - 1], *batch, *batches[n + 1]])
    assert stored == len(rows)
    assert await _stored(pool) == _expected(ticks)


async def test_a_roll_up_waits_for_the_one_in_progress_and_loses_nothing(
    pool: asyncpg.Pool,
) -> None:
    """Store workers roll up one at a time: while another holds the roll-up lock a worker skips
    the round and the queue stays as it was; the next round does the work."""
    await store(pool, [tick(at("09:20:05"), 100.0, 10), tick(at("09:31:00"), 101.0, 20)],
                rollup=False)  # fmt: skip
    async with pool.acquire() as holder, pool.acquire() as conn:
        await holder.execute("SELECT pg_advisory_lock($1)", ROLLUP_LOCK)
        assert await rollup_candles(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM candle_rollup_queue") == 2
        await holder.execute("SELECT pg_advisory_unlock($1)", ROLLUP_LOCK)
        rolled = await rollup_candles(conn)
    assert sorted((c.interval, c.start.astimezone(IST).strftime("%H:%M")) for c in rolled) == [
        ("15m", "09:15"), ("15m", "09:30"), ("1d", "09:15"), ("1h", "09:15"),
        ("5m", "09:20"), ("5m", "09:30"),
    ]  # fmt: skip
