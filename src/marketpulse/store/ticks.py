"""Ticks → rows of the ``ticks`` table, written idempotently with binary COPY.

COPY cannot skip duplicates, so a batch is copied into a per-session temporary staging table and
moved with ``INSERT … ON CONFLICT DO NOTHING`` in the same transaction: a firehose entry that is
delivered twice (a worker crashed after commit but before XACK) is stored once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Final

import asyncpg

from marketpulse.model import Candle, Tick
from marketpulse.store.candles import MOVE_WITH_CANDLES, update_volumes
from marketpulse.store.database import Connection

COLUMNS: Final[tuple[str, ...]] = (
    "time", "symbol", "source", "token", "exchange", "mode", "ltp", "ltq", "atp", "volume",
    "oi", "open", "high", "low", "close", "bid", "bid_qty", "ask", "ask_qty", "total_buy_qty",
    "total_sell_qty", "ts_exchange", "ts_recv", "stream", "stream_id",
)  # fmt: skip

_STAGING: Final = "ticks_staging"
_CREATE_STAGING: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} "
    "(LIKE ticks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COLUMN_LIST: Final = ", ".join(COLUMNS)
_MOVE: Final = (
    f"INSERT INTO ticks ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGING} "
    "ON CONFLICT DO NOTHING"
)
_MOVE_WITH_CANDLES: Final = MOVE_WITH_CANDLES.format(columns=_COLUMN_LIST, staging=_STAGING)

Row = tuple[Any, ...]


def _utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def tick_row(tick: Tick, stream: str, stream_id: str) -> Row:
    """One ``ticks`` row. ``time`` is the exchange time when the feed gives one, else the
    receive time — the exchange time itself is stored only if it was on the wire."""
    ts_exchange = _utc_ms(tick.ts_exchange) if tick.ts_exchange is not None else None
    if ts_exchange is not None:
        time = ts_exchange
    elif tick.ts_recv is not None:
        time = datetime.fromtimestamp(tick.ts_recv / 1e9, UTC)
    else:
        time = datetime.now(UTC)
    bid = tick.bids[0] if tick.bids else None
    ask = tick.asks[0] if tick.asks else None
    return (
        time, tick.key, tick.source, tick.token, tick.exchange, tick.mode, tick.ltp, tick.ltq,
        tick.atp, tick.volume, tick.oi, tick.open, tick.high, tick.low, tick.close,
        bid.price if bid else None, bid.qty if bid else None,
        ask.price if ask else None, ask.qty if ask else None,
        tick.total_buy_qty, tick.total_sell_qty, ts_exchange, tick.ts_recv, stream, stream_id,
    )  # fmt: skip


def row_days(rows: list[Row]) -> set[date]:
    return {row[0].date() for row in rows}


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Pool ``init`` hook: every pooled connection gets its staging table once."""
    await conn.execute(_CREATE_STAGING)


async def copy_ticks(conn: Connection, rows: list[Row]) -> int:
    """Store ``rows`` exactly once; returns how many were new (the rest were redeliveries)."""
    async with conn.transaction():
        await conn.copy_records_to_table(_STAGING, records=rows, columns=COLUMNS)
        status = await conn.execute(_MOVE)
    return int(status.rsplit(" ", 1)[1])


async def copy_ticks_with_candles(conn: Connection, rows: list[Row]) -> tuple[int, list[Candle]]:
    """:func:`copy_ticks`, and the newly stored ticks merged into candles in the same
    transaction; returns the count of new ticks and the candles they changed."""
    async with conn.transaction():
        await conn.copy_records_to_table(_STAGING, records=rows, columns=COLUMNS)
        touched = await conn.fetchrow(_MOVE_WITH_CANDLES)
        assert touched is not None
        candles = await update_volumes(conn, touched)
    return int(touched["stored"]), candles
