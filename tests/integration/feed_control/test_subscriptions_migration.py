"""Migration 0005 creates the ``subscriptions`` table with its one-row-per-(symbol, feed) rule,
and its downgrade removes it again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from marketpulse.store.database import asyncpg_dsn, downgrade_sync, upgrade_sync


async def test_one_row_per_symbol_and_feed_including_the_every_feed_row(
    pool: asyncpg.Pool,
) -> None:
    insert = "INSERT INTO subscriptions (symbol, mode, feed) VALUES ($1, 'full', $2)"
    await pool.execute(insert, "TCS.NSE", None)
    await pool.execute(insert, "TCS.NSE", "sim")
    for feed in (None, "sim"):
        with pytest.raises(asyncpg.UniqueViolationError):
            await pool.execute(insert, "TCS.NSE", feed)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("INSERT INTO subscriptions (symbol, mode) VALUES ('X.NSE', 'deep')")


async def test_the_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    async def has_table() -> bool:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            return bool(await conn.fetchval("SELECT to_regclass('subscriptions') IS NOT NULL"))
        finally:
            await conn.close()

    assert await has_table()
    await asyncio.to_thread(downgrade_sync, database_url, "0004")
    assert not await has_table()
    await asyncio.to_thread(upgrade_sync, database_url, "head")
    assert await has_table()
