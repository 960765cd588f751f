"""Synthetic but consistent history for the emulator's ``getCandleData``.

Every interval is aggregated from the same one-minute bars, so a 5-minute candle is exactly its
five minutes (open of the first, close of the last, extreme high/low, summed volume) and a day is
exactly its session. A day's minute bars are a seeded random walk from a deterministic opening
level near the instrument's simulator price: a function of (seed, token, date) only, so answers
never change between requests. Weekdays only (holidays are not modelled), 09:15-15:30 IST.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Final

from marketpulse.feeds.angelone.market_data import Interval
from marketpulse.feeds.simulator.trading_calendar import IST

SESSION_START: Final = time(9, 15)
SESSION_MINUTES: Final = 375  # 09:15 → 15:30

Bar = tuple[float, float, float, float, int]  # open, high, low, close, volume
Row = list[str | float | int]


def _grid(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 2)


@lru_cache(maxsize=4096)
def minute_bars(seed: int, token: str, base: float, tick: float, day: date) -> tuple[Bar, ...]:
    """The session's 375 one-minute bars of ``token`` on ``day``."""
    rng = random.Random(f"{seed}:{token}:{day.isoformat()}")
    drift = 0.06 * math.sin(day.toordinal() / 23.0) + 0.03 * math.sin(day.toordinal() / 7.0)
    price = _grid(base * (1.0 + drift + 0.01 * (rng.random() - 0.5)), tick)
    step = max(tick, base * 4e-4)
    unit = max(1, int(2_000_000 / max(base, 1.0)))
    bars: list[Bar] = []
    for _ in range(SESSION_MINUTES):
        open_ = price
        close = max(tick, _grid(open_ + step * (rng.random() - 0.5) * 2.0, tick))
        high = _grid(max(open_, close) + step * rng.random() * 0.5, tick)
        low = max(tick, _grid(min(open_, close) - step * rng.random() * 0.5, tick))
        bars.append((open_, high, low, close, unit * (1 + int(rng.random() * 20))))
        price = close
    return tuple(bars)


def _bucket_minutes(interval: Interval) -> int:
    return int(interval.length.total_seconds() // 60)


def _aggregate(bars: tuple[Bar, ...]) -> Bar:
    return (bars[0][0], max(b[1] for b in bars), min(b[2] for b in bars), bars[-1][3],
            sum(b[4] for b in bars))  # fmt: skip


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def candles(
    seed: int,
    token: str,
    base: float,
    tick: float,
    interval: Interval,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Row]:
    """``[[time, open, high, low, close, volume], ...]`` for candles starting in [start, end]
    and already begun at ``now`` (all IST-aware)."""
    rows: list[Row] = []
    day = start.astimezone(IST).date()
    last_day = min(end, now).astimezone(IST).date()
    while day <= last_day:
        if day.weekday() < 5:
            rows += _day_rows(seed, token, base, tick, interval, day, start, end, now)
        day += timedelta(days=1)
    return rows


def _day_rows(
    seed: int,
    token: str,
    base: float,
    tick: float,
    interval: Interval,
    day: date,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Row]:
    bars = minute_bars(seed, token, base, tick, day)
    opened = datetime.combine(day, SESSION_START, IST)
    if interval is Interval.ONE_DAY:
        midnight = datetime.combine(day, time(0), IST)
        if not (start <= midnight <= end) or opened > now:
            return []
        elapsed = min(SESSION_MINUTES, int((now - opened).total_seconds() // 60) + 1)
        return [[_stamp(midnight), *_aggregate(bars[:elapsed])]]
    size = _bucket_minutes(interval)
    rows: list[Row] = []
    for first in range(0, SESSION_MINUTES, size):
        begins = opened + timedelta(minutes=first)
        if begins < start or begins > end or begins > now:
            continue
        elapsed = int((now - begins).total_seconds() // 60) + 1
        chunk = bars[first : min(first + size, first + elapsed, SESSION_MINUTES)]
        rows.append([_stamp(begins), *_aggregate(chunk)])
    return rows
