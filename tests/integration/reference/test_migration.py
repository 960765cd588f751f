"""Migration 0004: a working downgrade, and an upgrade that succeeds where pg_trgm cannot be
created (search then runs without the trigram indexes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from marketpulse.reference.search import search_instruments, trigram_available
from marketpulse.store.database import asyncpg_dsn, downgrade_sync, upgrade_sync
from marketpulse.store.orm import create_engine, create_sessionmaker

TABLES = (
    "exchange_special_sessions",
    "sectors",
    "providers",
    "exchange_providers",
    "instrument_sync_jobs",
)


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_downgrade_removes_everything_0004_added_and_upgrade_restores_it(
    database_url: str,
) -> None:
    await asyncio.to_thread(downgrade_sync, database_url, "0003")
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert not set(TABLES) & await _tables(conn)
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'instruments'"
            )
        }
        assert "sector_id" not in columns
        await conn.close()
        await asyncio.to_thread(upgrade_sync, database_url, "head")
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        assert set(TABLES) <= await _tables(conn)
    finally:
        await conn.close()


@pytest.fixture
async def limited_database(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """An empty database whose owner-less role may create tables but not extensions (no CREATE
    on the database), so ``CREATE EXTENSION pg_trgm`` fails with insufficient_privilege."""
    admin_url = server_urls[1]
    tag = uuid.uuid4().hex[:10]
    role, name = f"mp_limited_{tag}", f"mp_limited_{tag}"
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.execute(f'REVOKE CREATE ON DATABASE "{name}" FROM PUBLIC')
    db = await asyncpg.connect(asyncpg_dsn(admin_url).rpartition("/")[0] + f"/{name}")
    await db.execute(f'GRANT ALL ON SCHEMA public TO "{role}"')
    await db.close()
    head = asyncpg_dsn(admin_url).rpartition("/")[0]
    scheme, _, rest = head.partition("://")
    host = rest.rpartition("@")[2]
    try:
        yield f"{scheme}://{role}@{host}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_without_pg_trgm_the_migration_succeeds_and_search_uses_prefixes(
    limited_database: str,
) -> None:
    await asyncio.to_thread(upgrade_sync, limited_database, "head")
    conn = await asyncpg.connect(asyncpg_dsn(limited_database))
    try:
        await conn.execute(
            "INSERT INTO instruments (symbol, exchange, name) VALUES "
            "('RELIANCE.NSE', 'NSE', 'Reliance Industries'), ('INFY.NSE', 'NSE', 'Infosys')"
        )
        indexes = {
            r["indexname"]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'instruments'"
            )
        }
    finally:
        await conn.close()
    assert "instruments_symbol_prefix_idx" in indexes
    assert "instruments_symbol_trgm_idx" not in indexes
    engine = create_engine(limited_database, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            assert await trigram_available(session) is False
            hits = await search_instruments(session, "relia")
            assert [(h.instrument.symbol, h.match) for h in hits] == [
                ("RELIANCE.NSE", "symbol_prefix")
            ]
            infy = await search_instruments(session, "osys")
            assert [(h.instrument.symbol, h.match) for h in infy] == [("INFY.NSE", "substring")]
    finally:
        await engine.dispose()
