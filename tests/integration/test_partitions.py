"""Day partitions of ``ticks``: created ahead across a day boundary, dropped past retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from marketpulse.store.database import asyncpg_dsn
from marketpulse.store.partitions import PartitionManager, partition_day, partition_ddl


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    yield connection
    await connection.close()


async def partitions(conn: asyncpg.Connection) -> set[date]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ticks'"
    )
    return {d for r in rows if (d := partition_day(r["relname"])) is not None}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_partitions_are_created_ahead_and_roll_over_at_midnight_utc(
    conn: asyncpg.Connection,
) -> None:
    clock = Clock(datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    manager = PartitionManager(days_ahead=1, clock=clock)
    await manager.ensure(conn, [])
    assert await partitions(conn) >= {date(2026, 3, 10), date(2026, 3, 11)}
    clock.now += timedelta(minutes=2)
    await manager.ensure(conn, [])
    assert date(2026, 3, 12) in await partitions(conn)
    # A row just after midnight lands in the new day's partition.
    await conn.execute(
        "INSERT INTO ticks (time, symbol, source, token, exchange, mode, ltp, stream, stream_id) "
        "VALUES ($1, 'X.NSE', 'sim', '1', 'NSE', 'ltp', 1.0, 's', '1-0')",
        datetime(2026, 3, 11, 0, 0, 30, tzinfo=UTC),
    )
    count = await conn.fetchval("SELECT count(*) FROM ticks_p20260311")
    assert count == 1


async def test_partitions_past_the_retention_window_are_dropped(conn: asyncpg.Connection) -> None:
    today = date(2026, 3, 10)
    for offset in (10, 8, 7, 6, 0):
        await conn.execute(partition_ddl(today - timedelta(days=offset)))
    manager = PartitionManager(
        days_ahead=0, retention_days=7, clock=lambda: datetime(2026, 3, 10, 12, tzinfo=UTC)
    )
    dropped = await manager.drop_expired(conn)
    assert dropped == ["ticks_p20260228", "ticks_p20260302", "ticks_p20260303"]
    assert await partitions(conn) >= {date(2026, 3, 4), date(2026, 3, 10)}
    assert date(2026, 3, 3) not in await partitions(conn)
    assert await manager.drop_expired(conn) == []


async def test_retention_zero_keeps_everything(conn: asyncpg.Connection) -> None:
    await conn.execute(partition_ddl(date(2020, 1, 1)))
    assert await PartitionManager(days_ahead=0, retention_days=0).drop_expired(conn) == []
    assert date(2020, 1, 1) in await partitions(conn)
