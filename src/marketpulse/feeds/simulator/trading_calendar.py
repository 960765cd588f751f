"""NSE trading calendar rules the simulator needs: the cash session and monthly F&O expiries.

Exchange holidays are not modelled: the simulator trades every weekday, and an expiry that
falls on a holiday is not moved to the previous trading day. That keeps the rules pure
functions of the date, which is what determinism needs.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

IST: Final = ZoneInfo("Asia/Kolkata")
SESSION_OPEN: Final = time(9, 15)
SESSION_CLOSE: Final = time(15, 30)

# SEBI's expiry-day rationalisation moved NSE's F&O expiries from Thursday to Tuesday
# starting with the September 2025 contracts.
_TUESDAY_EXPIRY_FROM: Final = date(2025, 9, 1)


def session_open(now: float) -> bool:
    """Whether epoch second ``now`` falls in the NSE/BSE normal session (09:15-15:30 IST)."""
    local = datetime.fromtimestamp(now, IST)
    return local.weekday() < 5 and SESSION_OPEN <= local.time() < SESSION_CLOSE


def ist_date(now: float) -> date:
    """The trading date (in India) of epoch second ``now``."""
    return datetime.fromtimestamp(now, IST).date()


def next_ist_midnight_ns(now_ns: int) -> int:
    """Epoch nanoseconds of the next midnight in India, where the trading day rolls over."""
    today = datetime.fromtimestamp(now_ns / 1e9, IST).date()
    midnight = datetime.combine(today + timedelta(days=1), time(0), IST)
    return int(midnight.timestamp()) * 1_000_000_000


def monthly_expiry(year: int, month: int) -> date:
    """The last Tuesday of the month (last Thursday before September 2025)."""
    weekday = (
        calendar.TUESDAY if date(year, month, 1) >= _TUESDAY_EXPIRY_FROM else calendar.THURSDAY
    )
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def upcoming_monthly_expiries(today: date, count: int) -> list[date]:
    """The next ``count`` monthly expiries on or after ``today`` (current month first)."""
    expiries: list[date] = []
    year, month = today.year, today.month
    while len(expiries) < count:
        expiry = monthly_expiry(year, month)
        if expiry >= today:
            expiries.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return expiries
