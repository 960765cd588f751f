"""Special sessions (muhurat trading) count as trading time for gap repair: through the API
into PostgreSQL, read back by ``store.sessions.load_sessions``."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from marketpulse.store.sessions import ExchangeSession, load_sessions

IST = ZoneInfo("Asia/Kolkata")


def ist(month: int, day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=IST)


async def test_a_special_session_on_a_holiday_is_in_session(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Sunday 8 November 2026 (Diwali), an NSE holiday, with a muhurat session 18:00-19:15.
    await api.post("/api/exchanges/NSE/holidays", json={"dates": ["2026-11-08"]})
    before = await load_sessions(pool)
    assert before.windows("INFY.NSE", ist(11, 8, 0), ist(11, 9, 0)) == []
    response = await api.post(
        "/api/exchanges/NSE/special-sessions",
        json={
            "session_date": "2026-11-08",
            "session_open": "18:00:00",
            "session_close": "19:15:00",
            "description": "Muhurat trading",
        },
    )
    assert response.status_code == 201, response.text
    sessions = await load_sessions(pool)
    assert sessions.windows("INFY.NSE", ist(11, 8, 0), ist(11, 9, 0)) == [
        (ist(11, 8, 18), ist(11, 8, 19, 15))
    ]
    # Other exchanges are unaffected; BSE has no special session that day.
    assert sessions.windows("INFY.BSE", ist(11, 8, 0), ist(11, 9, 0)) == []


def test_a_special_session_on_a_trading_day_adds_to_the_regular_one() -> None:
    session = ExchangeSession(
        "NSE",
        IST,
        time(9, 15),
        time(15, 30),
        special={
            ist(11, 9, 0).date(): (time(15, 0), time(17, 0)),
            ist(11, 10, 0).date(): (time(18, 0), time(19, 0)),
        },
    )
    # Overlapping: one merged window 09:15-17:00; separate: two windows in order.
    assert session.windows(ist(11, 9, 0), ist(11, 10, 0)) == [(ist(11, 9, 9, 15), ist(11, 9, 17))]
    assert session.windows(ist(11, 10, 0), ist(11, 11, 0)) == [
        (ist(11, 10, 9, 15), ist(11, 10, 15, 30)),
        (ist(11, 10, 18), ist(11, 10, 19)),
    ]
