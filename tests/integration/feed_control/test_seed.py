"""Seeding exchanges, sectors and the demo universe: ``marketpulse db seed``, ``POST
/api/admin/seed`` and the idempotence both rely on."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.config import Settings
from marketpulse.feeds.simulator.adapter import SimulatorAdapter
from marketpulse.seed import SECTORS, seed_exchanges, seed_reference_data
from marketpulse.service import Role
from tests.support.service import running_service


async def test_seeding_twice_changes_nothing_the_second_time(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    universe = SimulatorAdapter.from_settings(settings).universe
    first = await seed_reference_data(pool, settings)
    steps = first.steps
    # Migration 0001 already wrote the exchanges with the same values.
    assert (steps["exchanges"].unchanged, steps["exchanges"].inserted) == (len(seed_exchanges()), 0)
    assert steps["sectors"].inserted == len(SECTORS)
    assert steps["instruments"].inserted == len(universe) == 57
    assert steps["sim_mappings"].inserted == len(universe)
    assert first.changed and first.notes == []

    second = await seed_reference_data(pool, settings)
    assert not second.changed
    for counts in second.steps.values():
        assert counts.inserted == counts.updated == 0 and counts.unchanged == counts.total

    reliance = await pool.fetchrow(
        "SELECT i.exchange, i.name, s.name AS sector, p.token FROM instruments i "
        "JOIN sectors s ON s.id = i.sector_id "
        "JOIN instrument_providers p ON p.instrument_id = i.id AND p.provider = 'sim' "
        "WHERE i.symbol = 'RELIANCE.NSE'"
    )
    assert reliance is not None
    assert (reliance["exchange"], reliance["sector"]) == ("NSE", "Oil Gas & Consumable Fuels")
    assert reliance["token"] == universe.token_of("RELIANCE.NSE")
    unassigned = await pool.fetchval(
        "SELECT count(*) FROM instruments WHERE instrument_type = 'EQ' AND sector_id IS NULL"
    )
    assert unassigned == 0


async def test_seeding_repairs_changed_rows_and_keeps_an_administrators_sector(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await seed_reference_data(pool, settings)
    await pool.execute("UPDATE exchanges SET name = 'renamed' WHERE code = 'NSE'")
    await pool.execute("UPDATE instruments SET name = 'old name' WHERE symbol = 'TCS.NSE'")
    await pool.execute(
        "UPDATE instruments SET sector_id = (SELECT id FROM sectors WHERE name = 'Services') "
        "WHERE symbol = 'INFY.NSE'"
    )
    report = await seed_reference_data(pool, settings)
    assert report.steps["exchanges"].updated == 1
    assert report.steps["instruments"].updated == 1
    assert await pool.fetchval("SELECT name FROM exchanges WHERE code = 'NSE'") == (
        "National Stock Exchange of India"
    )
    kept = await pool.fetchval(
        "SELECT s.name FROM instruments i JOIN sectors s ON s.id = i.sector_id "
        "WHERE i.symbol = 'INFY.NSE'"
    )
    assert kept == "Services"


async def test_db_seed_prints_a_summary_and_is_idempotent(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    first = await asyncio.to_thread(runner.invoke, app, ["db", "seed"])
    assert first.exit_code == 0, first.output
    assert "instruments" in first.output and "57" in first.output
    assert "changed" in first.output.splitlines()[-1]
    second = await asyncio.to_thread(runner.invoke, app, ["db", "seed"])
    assert second.exit_code == 0, second.output
    assert "nothing to change" in second.output


async def test_the_admin_endpoint_seeds_and_reports_counts(settings: Settings) -> None:
    async with (
        running_service(settings, frozenset({Role.API})) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        first = await http.post("/api/admin/seed")
        assert first.status_code == 200, first.text
        assert first.json()["changed"] is True
        assert first.json()["steps"]["instruments"] == {"inserted": 57, "updated": 0,
                                                        "unchanged": 0}  # fmt: skip
        second = (await http.post("/api/admin/seed")).json()
        assert second["changed"] is False
        assert second["steps"]["sectors"] == {"inserted": 0, "updated": 0,
                                              "unchanged": len(SECTORS)}  # fmt: skip
