"""Stored history over REST: candles, ticks, intraday and daily bars.

Times are ISO 8601; a time without an offset is UTC. Ranges are half-open ``[start, end)`` for
times and inclusive for dates. Every bad request is a 422 with the standard error body, an
unknown symbol a 404, and a database outage a 503.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query

from marketpulse.api.deps import PoolDep
from marketpulse.api.security import require_user
from marketpulse.feeds.history import CANDLE_INTERVALS, parse_interval
from marketpulse.model import SymbolError, normalize_symbol
from marketpulse.store import history
from marketpulse.store.database import DATABASE_ERRORS

router = APIRouter(tags=["history"], dependencies=[Depends(require_user)])

MAX_CANDLES = 50_000
MAX_TICKS_PAGE = 10_000

Symbol = Annotated[str, Query(description="canonical symbol, e.g. RELIANCE.NSE")]
Interval = Annotated[str, Query(description=f"one of {', '.join(CANDLE_INTERVALS)}")]


def _symbol(raw: str) -> str:
    try:
        return normalize_symbol(raw)
    except SymbolError as exc:
        raise HTTPException(422, str(exc)) from exc


def _interval(raw: str) -> str:
    try:
        return parse_interval(raw)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _time_range(
    start: datetime | None, end: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    stop = as_utc(end) if end is not None else datetime.now(UTC)
    begin = as_utc(start) if start is not None else stop - default
    if begin >= stop:
        raise HTTPException(422, f"start ({begin.isoformat()}) must be before end "
                                 f"({stop.isoformat()})")  # fmt: skip
    return begin, stop


def _date_range(first: date, last: date | None) -> tuple[date, date]:
    final = last or first
    if final < first:
        raise HTTPException(422, f"end_date ({final}) is before start_date ({first})")
    return first, final


async def _empty_or_unknown(conn: asyncpg.Pool, symbol: str, found: list[Any]) -> None:
    if not found and not await history.known_symbol(conn, symbol):
        raise HTTPException(404, f"unknown symbol {symbol}: no instrument and no stored history")


def _db_down(exc: Exception) -> HTTPException:
    return HTTPException(503, f"database unavailable: {exc}")


@router.get("/api/historical/candles", summary="Stored candles of one symbol")
async def candles(
    pool: PoolDep,
    symbol: Symbol,
    interval: Interval = "1m",
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CANDLES)] = 5000,
) -> dict[str, Any]:
    """Candles whose start lies in ``[start, end)`` (default: the last day), oldest first;
    ``status`` is ``live`` (still forming), ``closed`` or ``reconciled`` (from the provider's
    history by backfill or gap repair)."""
    name, step = _symbol(symbol), _interval(interval)
    begin, stop = _time_range(start, end, timedelta(days=1))
    try:
        rows = await history.fetch_candles(pool, name, step, begin, stop, limit)
        await _empty_or_unknown(pool, name, rows)
    except DATABASE_ERRORS as exc:
        raise _db_down(exc) from exc
    return {
        "symbol": name, "interval": step, "start": begin, "end": stop,
        "count": len(rows), "truncated": len(rows) == limit, "candles": rows,
    }  # fmt: skip


@router.get("/api/historical/ticks", summary="Stored ticks of one symbol, paged")
async def ticks(
    pool: PoolDep,
    symbol: Symbol,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TICKS_PAGE)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Ticks in ``[start, end)`` (default: the last hour), oldest first. Pass ``next_cursor``
    back as ``cursor`` (with the same range) for the next page; it is ``null`` on the last."""
    name = _symbol(symbol)
    begin, stop = _time_range(start, end, timedelta(hours=1))
    try:
        after = history.decode_cursor(cursor) if cursor else None
    except history.CursorError as exc:
        raise HTTPException(422, str(exc)) from exc
    try:
        rows, next_cursor = await history.fetch_ticks(pool, name, begin, stop, limit, after)
        if after is None:
            await _empty_or_unknown(pool, name, rows)
    except DATABASE_ERRORS as exc:
        raise _db_down(exc) from exc
    return {"symbol": name, "count": len(rows), "ticks": rows, "next_cursor": next_cursor}


@router.get("/marketdata/intraday", summary="Intraday bars of trading days")
async def intraday(
    pool: PoolDep,
    symbol: Symbol,
    start_date: date,
    end_date: date | None = None,
    interval: Interval = "1m",
) -> dict[str, Any]:
    """Bars of ``interval`` (intraday ones only) for the trading days ``start_date`` to
    ``end_date`` (inclusive; default: just ``start_date``)."""
    name, step = _symbol(symbol), _interval(interval)
    if step == "1d":
        raise HTTPException(422, "interval 1d is daily data: use /marketdata/daily")
    first, last = _date_range(start_date, end_date)
    try:
        rows = await history.fetch_intraday(pool, name, step, first, last)
        await _empty_or_unknown(pool, name, rows)
    except DATABASE_ERRORS as exc:
        raise _db_down(exc) from exc
    return {"symbol": name, "interval": step, "count": len(rows), "data": rows}


@router.get("/marketdata/daily", summary="Daily bars with previous and adjusted close")
async def daily(
    pool: PoolDep,
    symbol: Symbol,
    start_date: date,
    end_date: date | None = None,
) -> dict[str, Any]:
    """``open, high, low, close, volume, previous_close, adj_close, delivery_percentage`` per
    trading day (the last two where the provider gives them)."""
    name = _symbol(symbol)
    first, last = _date_range(start_date, end_date)
    try:
        rows = await history.fetch_daily(pool, name, first, last)
        await _empty_or_unknown(pool, name, rows)
    except DATABASE_ERRORS as exc:
        raise _db_down(exc) from exc
    return {"symbol": name, "count": len(rows), "data": rows}


@router.get("/api/gaps", summary="Feed outages per symbol and their repair")
async def gaps(
    pool: PoolDep,
    status: Annotated[
        Literal["open", "repaired", "unrepairable"] | None, Query(description="only this status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    """Newest first: the window, why the feed dropped, the cumulative volume that traded
    meanwhile (``volume_jump``), and whether the 1m candles were refilled from the provider."""
    try:
        rows = await pool.fetch(
            "SELECT id, feed, symbol, gap_start, gap_end, reason, status, volume_jump, candles, "
            "detail, detected_at, repaired_at FROM feed_gaps "
            "WHERE $1::text IS NULL OR status = $1 ORDER BY gap_start DESC, symbol LIMIT $2",
            status, limit,
        )  # fmt: skip
    except DATABASE_ERRORS as exc:
        raise _db_down(exc) from exc
    return {"count": len(rows), "gaps": [dict(r) for r in rows]}
