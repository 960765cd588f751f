"""Reading stored history: candles, ticks (keyset-paged) and the daily price history."""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Any, Final

import asyncpg
import msgspec

from marketpulse.store.database import Connection

Queryable = Connection | asyncpg.Pool
"""Reads run on a pool (one statement each) or on a connection."""

_TICK_COLUMNS: Final = (
    "time, symbol, source, exchange, mode, ltp, ltq, atp, volume, oi, open, high, low, close, "
    "bid, bid_qty, ask, ask_qty, total_buy_qty, total_sell_qty, ts_exchange, stream, stream_id"
)


class CursorError(ValueError):
    """A tick page cursor that this server did not hand out."""


class _Cursor(msgspec.Struct, array_like=True):
    time: datetime
    stream: str
    stream_id: str


def encode_cursor(record: asyncpg.Record) -> str:
    raw = msgspec.json.encode(_Cursor(record["time"], record["stream"], record["stream_id"]))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise CursorError(f"invalid cursor {text!r}: pass back next_cursor unchanged") from exc


async def known_symbol(conn: Queryable, symbol: str) -> bool:
    """Whether marketpulse has heard of ``symbol`` (instrument master or stored history)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM instruments WHERE symbol = $1) "
            "OR EXISTS (SELECT 1 FROM candles WHERE symbol = $1) "
            "OR EXISTS (SELECT 1 FROM price_history_daily WHERE symbol = $1)",
            symbol,
        )
    )


async def fetch_candles(
    conn: Queryable, symbol: str, interval: str, start: datetime, end: datetime, limit: int
) -> list[dict[str, Any]]:
    """Candles starting in ``[start, end)``, oldest first."""
    rows = await conn.fetch(
        "SELECT start, open, high, low, close, volume, oi, ticks, status FROM candles "
        "WHERE symbol = $1 AND interval = $2 AND start >= $3 AND start < $4 "
        "ORDER BY start LIMIT $5",
        symbol, interval, start, end, limit,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def fetch_intraday(
    conn: Queryable, symbol: str, interval: str, first: date, last: date
) -> list[dict[str, Any]]:
    """Candles of the trading days ``first``..``last`` (inclusive), oldest first."""
    rows = await conn.fetch(
        "SELECT start AS timestamp, open, high, low, close, volume FROM candles "
        "WHERE symbol = $1 AND interval = $2 AND trading_day BETWEEN $3 AND $4 ORDER BY start",
        symbol, interval, first, last,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def fetch_daily(
    conn: Queryable, symbol: str, first: date, last: date
) -> list[dict[str, Any]]:
    """Daily bars ``first``..``last``: the daily price history, plus today's day candle while
    the session is still running (it enters the history when it closes)."""
    rows = await conn.fetch(
        """
        SELECT date, open, high, low, close, volume, previous_close, adj_close,
               delivery_percentage
        FROM price_history_daily WHERE symbol = $1 AND date BETWEEN $2 AND $3
        UNION ALL
        SELECT c.trading_day, c.open, c.high, c.low, c.close, c.volume,
               (SELECT p.close FROM price_history_daily p
                WHERE p.symbol = c.symbol AND p.date < c.trading_day
                ORDER BY p.date DESC LIMIT 1),
               NULL, NULL
        FROM candles c
        WHERE c.symbol = $1 AND c.interval = '1d' AND c.trading_day BETWEEN $2 AND $3
          AND NOT EXISTS (SELECT 1 FROM price_history_daily p
                          WHERE p.symbol = c.symbol AND p.date = c.trading_day)
        ORDER BY date
        """,
        symbol, first, last,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def fetch_ticks(
    conn: Queryable,
    symbol: str,
    start: datetime,
    end: datetime,
    limit: int,
    after: _Cursor | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of stored ticks in ``[start, end)``, oldest first, and the cursor of the next
    page (``None`` on the last one). Keyset paging stays fast however deep the page."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {_TICK_COLUMNS} FROM ticks WHERE symbol = $1 AND time >= $2 AND time < $3 "
            "ORDER BY time, stream, stream_id LIMIT $4",
            symbol, start, end, limit + 1,
        )  # fmt: skip
    else:
        rows = await conn.fetch(
            f"SELECT {_TICK_COLUMNS} FROM ticks WHERE symbol = $1 AND time < $3 "
            "AND (time, stream, stream_id) > ($2, $5, $6) AND time >= $7 "
            "ORDER BY time, stream, stream_id LIMIT $4",
            symbol, after.time, end, limit + 1, after.stream, after.stream_id, start,
        )  # fmt: skip
    page = rows[:limit]
    cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    out = []
    for r in page:
        item = dict(r)
        del item["stream"], item["stream_id"]
        out.append(item)
    return out, cursor
