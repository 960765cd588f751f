"""Ticks → rows of the ``ticks`` table, written idempotently with binary COPY.

A batch is COPYed straight into ``ticks`` under a savepoint: the table's unique key (stream,
entry id, time) rejects the whole COPY if any entry was stored before. Only then — after a
redelivery (a worker crashed after commit but before XACK, or claimed a dead worker's entries)
— is the batch copied into a per-session temporary staging table and moved with
``INSERT … ON CONFLICT DO NOTHING``, in the same transaction: a firehose entry delivered twice
is stored once, and the common case pays for one COPY instead of a COPY plus an INSERT.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any, Final

import asyncpg

from marketpulse.model import Candle, Tick
from marketpulse.store.candles import CREATE_MINUTES, merge_candles, minute_partials
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
    "ON CONFLICT DO NOTHING RETURNING stream, stream_id, time"
)
_KEY: Final = itemgetter(COLUMNS.index("stream"), COLUMNS.index("stream_id"), COLUMNS.index("time"))
_CANDLE_FIELDS: Final = itemgetter(
    *(COLUMNS.index(c) for c in ("time", "symbol", "exchange", "ltp", "volume", "oi", "ts_recv"))
)

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


def keep_stored(rows: list[Row], stored: list[asyncpg.Record]) -> list[Row]:
    """The rows whose keys ``stored`` lists, each key once (a batch can hold one entry
    twice): the ticks a redelivery-aware move actually inserted."""
    keys = {(r["stream"], r["stream_id"], r["time"]) for r in stored}
    out = []
    for row in rows:
        key = _KEY(row)
        if key in keys:
            keys.discard(key)
            out.append(row)
    return out


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Pool ``init`` hook: every pooled connection gets its staging tables once."""
    await conn.execute(_CREATE_STAGING)
    await conn.execute(CREATE_MINUTES)


async def _store_new(conn: Connection, rows: list[Row]) -> list[Row]:
    """Store ``rows`` exactly once (inside the caller's transaction); returns the rows that
    were new — all of them unless the batch was (partly) delivered before."""
    try:
        async with conn.transaction():  # a savepoint: a duplicate undoes only this COPY
            await conn.copy_records_to_table("ticks", records=rows, columns=COLUMNS)
        return rows
    except asyncpg.UniqueViolationError:
        pass
    await conn.copy_records_to_table(_STAGING, records=rows, columns=COLUMNS)
    return keep_stored(rows, await conn.fetch(_MOVE))


async def copy_ticks(conn: Connection, rows: list[Row]) -> int:
    """Store ``rows`` exactly once; returns how many were new (the rest were redeliveries)."""
    async with conn.transaction():
        new = await _store_new(conn, rows)
    return len(new)


async def copy_ticks_with_candles(conn: Connection, rows: list[Row]) -> tuple[int, list[Candle]]:
    """:func:`copy_ticks`, and the newly stored ticks merged into candles in the same
    transaction; returns the count of new ticks and every candle they changed."""
    async with conn.transaction():
        new = await _store_new(conn, rows)
        candles = await merge_candles(conn, minute_partials(map(_CANDLE_FIELDS, new)))
    return len(new), candles
