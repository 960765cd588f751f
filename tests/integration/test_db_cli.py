"""``marketpulse db upgrade`` / ``db current`` against a real, empty database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner, Result

from marketpulse.cli import app
from marketpulse.store.database import MIGRATIONS_DIR, asyncpg_dsn


@pytest.fixture
async def empty_database(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    admin = asyncpg_dsn(server_urls[1])
    name = f"mp_empty_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield f"{admin.rpartition('/')[0]}/{name}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def test_db_upgrade_creates_the_schema_and_is_idempotent(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        # The CLI runs its own event loop, as it does for a user: keep it off the test's loop.
        return await asyncio.to_thread(runner.invoke, app, list(args))

    before = await invoke("db", "current")
    assert before.exit_code == 0, before.output
    assert "revision: None" in before.output
    for _ in range(2):
        result = await invoke("db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "migrated to head" in result.output
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert f"revision: {head}" in (await invoke("db", "current")).output
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    codes = {r["code"] for r in await conn.fetch("SELECT code FROM exchanges")}
    await conn.close()
    assert {"NSE", "BSE", "NFO", "NSE_INDEX", "BSE_INDEX", "NASDAQ", "NYSE"} <= codes


def test_db_upgrade_against_an_unreachable_server_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/nowhere")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "error:" in result.output
