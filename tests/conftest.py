"""Shared fixtures: real Redis and PostgreSQL for every test that needs them.

``REDIS_URL`` / ``DATABASE_URL`` from the environment are used when set (CI sets them);
otherwise the embedded launchers start private servers for the session, exactly as ``make demo``
does on a laptop. Each test gets its own Redis key prefix and its own database cloned from a
migrated template, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from marketpulse.config import Settings
from marketpulse.store.database import asyncpg_dsn, create_pool, upgrade_sync
from marketpulse.store.ticks import prepare_connection

pytest_plugins = ["tests.support.valkey"]


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if not redis_url or not database_url:
            from marketpulse.embedded import EmbeddedServices

            # Not under pytest's tmp dir: a root pytest session resets that to 0700, which
            # would lock out the unprivileged user the embedded PostgreSQL runs as.
            home = Path(tempfile.mkdtemp(prefix="marketpulse-test-"))
            stack.callback(shutil.rmtree, home, True)
            services = stack.enter_context(
                EmbeddedServices(
                    home,
                    want_redis=not redis_url,
                    want_postgres=not database_url,
                )
            )
            redis_url = redis_url or services.redis_url
            database_url = database_url or services.database_url
        assert redis_url and database_url
        yield redis_url, database_url


def _with_database(url: str, name: str) -> str:
    base = asyncpg_dsn(url)
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(scope="session")
async def template_database(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A database migrated once per session; tests clone it (CREATE DATABASE … TEMPLATE)."""
    admin_url = server_urls[1]
    name = f"mp_template_{os.getpid()}"
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    import asyncio

    await asyncio.to_thread(upgrade_sync, _with_database(admin_url, name))
    yield name
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(server_urls: tuple[str, str], template_database: str) -> AsyncIterator[str]:
    admin_url = server_urls[1]
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await conn.close()
    yield _with_database(admin_url, name)
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the test's database, prepared like the store role's."""
    pool = await create_pool(database_url, max_size=2, init=prepare_connection)
    yield pool
    await pool.close()


@pytest.fixture
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[0]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def settings(
    redis_url: str, database_url: str, tmp_path: Path, redis: aioredis.Redis
) -> AsyncIterator[Settings]:
    """Settings pointing at the test servers, with private key prefixes and short timings."""
    tag = uuid.uuid4().hex[:10]
    value = Settings(
        redis_url=redis_url,
        database_url=database_url,
        marketpulse_home=tmp_path / "home",
        environment="test",
        auth_enabled=False,  # tests/integration/auth turns it on for what it proves
        api_port=0,
        redis_key_prefix=f"mpt-{tag}",
        cache_key_prefix=f"mkt-{tag}",
        symbol_stream_prefix=f"mpt-{tag}-stream",
        firehose_shards=2,
        flush_interval_seconds=0.2,
        tick_buffer_size=200,
        sim_always_open=True,
        sim_ticks_per_second=500,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.5,
    )
    yield value
    for prefix in (value.redis_key_prefix, value.bus_tag, value.cache_key_prefix,
                   value.symbol_stream_prefix):  # fmt: skip
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
