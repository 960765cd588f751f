"""Exchanges: CRUD, the holiday calendar and special sessions (e.g. muhurat trading).

Holidays live in ``exchanges.holidays`` (a ``date[]`` that gap repair reads through
``store.sessions``); special sessions have their own table, one per exchange and date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.reference.errors import ConflictError, InvalidError, NotFoundError
from marketpulse.reference.models import Exchange, Instrument, SpecialSession

CODE_PATTERN = r"^[A-Z][A-Z0-9_]{1,19}$"
"""Exchange codes are what canonical symbols end in (``RELIANCE.NSE``): upper case, digits and
underscores (``NSE_INDEX``), 2 to 20 characters."""

_CODE = re.compile(CODE_PATTERN)


def check_code(code: str) -> str:
    """``code`` if it is a valid exchange code, else ``ValueError`` saying what is allowed."""
    if not _CODE.fullmatch(code):
        raise ValueError(
            f"exchange code {code!r} must be 2-20 characters of A-Z, 0-9 and _, starting with "
            "a letter (e.g. NSE, NSE_INDEX)"
        )
    return code


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA timezone (``Asia/Kolkata``), else ``ValueError``."""
    if name not in available_timezones():
        try:  # tzdata may know links that available_timezones() leaves out
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{name!r} is not an IANA timezone (e.g. Asia/Kolkata)") from exc
    return name


def check_hours(session_open: time, session_close: time, is_24h: bool) -> None:
    """A regular session must open before it closes, unless the venue trades around the clock."""
    if not is_24h and session_open >= session_close:
        raise ValueError(
            f"session_open {session_open} must be before session_close {session_close} "
            "unless is_24h is true"
        )


async def list_exchanges(session: AsyncSession) -> list[Exchange]:
    return list((await session.scalars(select(Exchange).order_by(Exchange.code))).all())


async def get_exchange(session: AsyncSession, code: str) -> Exchange:
    exchange = await session.get(Exchange, code)
    if exchange is None:
        raise NotFoundError(f"no exchange {code!r}")
    return exchange


async def create_exchange(session: AsyncSession, values: Mapping[str, Any]) -> Exchange:
    """Insert a new exchange; the code must be new (409 names the existing row)."""
    code = values["code"]
    existing = await session.get(Exchange, code)
    if existing is not None:
        raise ConflictError(f"exchange {code!r} already exists ({existing.name})")
    exchange = Exchange(**{"holidays": [], **values})
    exchange.holidays = sorted(set(exchange.holidays))
    session.add(exchange)
    await session.commit()
    await session.refresh(exchange)
    return exchange


async def update_exchange(session: AsyncSession, code: str, changes: Mapping[str, Any]) -> Exchange:
    """Apply a partial update; the resulting hours are checked as a whole."""
    exchange = await get_exchange(session, code)
    merged = {
        k: changes.get(k, getattr(exchange, k)) for k in ("session_open", "session_close", "is_24h")
    }
    try:
        check_hours(merged["session_open"], merged["session_close"], merged["is_24h"])
    except ValueError as exc:
        raise InvalidError(str(exc)) from exc
    for key, value in changes.items():
        setattr(exchange, key, sorted(set(value)) if key == "holidays" else value)
    await session.commit()
    await session.refresh(exchange)
    return exchange


async def delete_exchange(session: AsyncSession, code: str) -> None:
    """Delete an exchange nothing refers to; instruments listed on it keep it alive (409)."""
    exchange = await get_exchange(session, code)
    used = await session.scalar(
        select(func.count()).select_from(Instrument).where(Instrument.exchange == code)
    )
    if used:
        raise ConflictError(f"exchange {code!r} has {used} instruments; delete or move them first")
    await session.delete(exchange)
    await session.commit()


async def list_holidays(session: AsyncSession, code: str, year: int | None = None) -> list[date]:
    exchange = await get_exchange(session, code)
    days = sorted(exchange.holidays or ())
    return [d for d in days if year is None or d.year == year]


async def add_holidays(session: AsyncSession, code: str, days: Iterable[date]) -> list[date]:
    """Add dates to the calendar (already-present dates are fine); returns the whole calendar."""
    exchange = await get_exchange(session, code)
    exchange.holidays = sorted(set(exchange.holidays or ()) | set(days))
    await session.commit()
    return list(exchange.holidays)


async def remove_holiday(session: AsyncSession, code: str, day: date) -> None:
    exchange = await get_exchange(session, code)
    if day not in (exchange.holidays or ()):
        raise NotFoundError(f"{day.isoformat()} is not a holiday of {code}")
    exchange.holidays = [d for d in exchange.holidays if d != day]
    await session.commit()


async def list_special_sessions(
    session: AsyncSession, code: str, year: int | None = None
) -> list[SpecialSession]:
    await get_exchange(session, code)
    query = select(SpecialSession).where(SpecialSession.exchange == code)
    if year is not None:
        query = query.where(
            SpecialSession.session_date >= date(year, 1, 1),
            SpecialSession.session_date <= date(year, 12, 31),
        )
    return list((await session.scalars(query.order_by(SpecialSession.session_date))).all())


async def add_special_session(
    session: AsyncSession, code: str, values: Mapping[str, Any]
) -> SpecialSession:
    """One special session per exchange and date (409 names the one already there)."""
    await get_exchange(session, code)
    day: date = values["session_date"]
    existing = await session.scalar(
        select(SpecialSession).where(
            SpecialSession.exchange == code, SpecialSession.session_date == day
        )
    )
    if existing is not None:
        raise ConflictError(
            f"{code} already has a special session on {day.isoformat()} "
            f"({existing.session_open:%H:%M}-{existing.session_close:%H:%M}"
            f"{', ' + existing.description if existing.description else ''})"
        )
    special = SpecialSession(exchange=code, **values)
    session.add(special)
    await session.commit()
    await session.refresh(special)
    return special


async def remove_special_session(session: AsyncSession, code: str, day: date) -> None:
    await get_exchange(session, code)
    special = await session.scalar(
        select(SpecialSession).where(
            SpecialSession.exchange == code, SpecialSession.session_date == day
        )
    )
    if special is None:
        raise NotFoundError(f"{code} has no special session on {day.isoformat()}")
    await session.delete(special)
    await session.commit()
