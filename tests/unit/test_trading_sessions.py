"""Which part of an outage falls inside an exchange's trading session."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from marketpulse.store.sessions import ExchangeSession, TradingSessions

IST = ZoneInfo("Asia/Kolkata")
NSE = ExchangeSession("NSE", IST, time(9, 15), time(15, 30), holidays=frozenset({date(2026, 3, 3)}))
CRYPTO = ExchangeSession("CCC", ZoneInfo("UTC"), time(0, 0), time(0, 0), is_24h=True)
SESSIONS = TradingSessions([NSE, CRYPTO])


def ist(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=IST)


def test_an_outage_inside_the_session_is_kept_whole() -> None:
    assert SESSIONS.windows("INFY.NSE", ist(2, 10), ist(2, 11)) == [(ist(2, 10), ist(2, 11))]


def test_an_outage_overnight_only_counts_its_session_parts() -> None:
    # Monday 15:00 to Wednesday 10:00; Tuesday 3 March is a holiday.
    assert SESSIONS.windows("INFY.NSE", ist(2, 15), ist(4, 10)) == [
        (ist(2, 15), ist(2, 15, 30)),
        (ist(4, 9, 15), ist(4, 10)),
    ]


def test_nights_weekends_and_holidays_lose_nothing() -> None:
    assert SESSIONS.windows("INFY.NSE", ist(2, 16), ist(3, 23)) == []  # evening + holiday
    assert SESSIONS.windows("INFY.NSE", ist(7, 9), ist(8, 18)) == []  # Saturday, Sunday
    assert SESSIONS.windows("INFY.NSE", ist(2, 11), ist(2, 11)) == []  # empty range


def test_24_hour_venues_and_unknown_exchanges_keep_the_whole_outage() -> None:
    start, end = ist(7, 2), ist(8, 3)
    assert SESSIONS.windows("BTC.CCC", start, end) == [(start, end)]
    assert SESSIONS.windows("ABC.XYZ", start, end) == [(start, end)]
