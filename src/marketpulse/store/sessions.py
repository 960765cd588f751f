"""When each exchange trades, from the ``exchanges`` table: session hours, weekends, holidays,
and the one-day special sessions of ``exchange_special_sessions`` (e.g. muhurat trading).

Gap repair asks which part of a feed outage fell inside a trading session: an outage overnight,
at a weekend or on an exchange holiday lost nothing, so it is neither recorded nor refilled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class ExchangeSession:
    """One exchange's regular session, in its own timezone, plus special sessions by date
    (open, close): a special session trades even on a weekend or holiday (muhurat trading falls
    on Diwali), and on a regular day it adds to the regular session."""

    code: str
    timezone: ZoneInfo
    open: time
    close: time
    is_24h: bool = False
    holidays: frozenset[date] = frozenset()
    special: Mapping[date, tuple[time, time]] = field(default_factory=dict)

    def trades_on(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """The parts of ``[start, end)`` (timezone-aware) inside a session, in order; a 24-hour
        venue trades the whole range."""
        if end <= start:
            return []
        if self.is_24h:
            return [(start, end)]
        out: list[Window] = []
        day = start.astimezone(self.timezone).date()
        last = end.astimezone(self.timezone).date()
        while day <= last:
            hours = [(self.open, self.close)] if self.trades_on(day) else []
            if day in self.special:
                hours.append(self.special[day])
            for open_, close in sorted(hours):
                opens = datetime.combine(day, open_, self.timezone)
                closes = datetime.combine(day, close, self.timezone)
                lo, hi = max(start, opens), min(end, closes)
                if out and lo <= out[-1][1]:  # overlaps the previous window: merge
                    out[-1] = (out[-1][0], max(out[-1][1], hi))
                elif lo < hi:
                    out.append((lo, hi))
            day += timedelta(days=1)
        return out


class TradingSessions:
    """Sessions by exchange code; an exchange without a row counts as always trading, so an
    outage there is recorded rather than silently ignored."""

    def __init__(self, sessions: Iterable[ExchangeSession]) -> None:
        self.by_code = {s.code: s for s in sessions}

    def windows(self, symbol: str, start: datetime, end: datetime) -> list[Window]:
        """In-session parts of ``[start, end)`` for a canonical ``NAME.EXCHANGE`` symbol."""
        session = self.by_code.get(symbol.rpartition(".")[2])
        if session is None:
            return [(start, end)] if start < end else []
        return session.windows(start, end)


async def load_sessions(pool: asyncpg.Pool) -> TradingSessions:
    rows = await pool.fetch(
        "SELECT code, timezone, session_open, session_close, is_24h, holidays FROM exchanges"
    )
    special: dict[str, dict[date, tuple[time, time]]] = {}
    for r in await pool.fetch(
        "SELECT exchange, session_date, session_open, session_close FROM exchange_special_sessions"
    ):
        hours = (r["session_open"], r["session_close"])
        special.setdefault(r["exchange"], {})[r["session_date"]] = hours
    return TradingSessions(
        ExchangeSession(r["code"], ZoneInfo(r["timezone"]), r["session_open"],
                        r["session_close"], r["is_24h"], frozenset(r["holidays"] or ()),
                        special.get(r["code"], {}))
        for r in rows
    )  # fmt: skip
