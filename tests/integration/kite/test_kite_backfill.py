"""Backfill from Kite's REST history (the emulator) through the API and the CLI, checked
candle by candle against what the broker serves for every interval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from marketpulse.config import Settings
from marketpulse.feeds.kite.feed import SPEC
from marketpulse.feeds.kite.rest import KiteRestClient
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.service import Role
from marketpulse.store.instruments import sync_instruments
from tests.integration.kite.helpers import RunningEmulator, invoke_cli, kite_emulator, save_session
from tests.support.service import running_service

DAY = datetime(2026, 3, 2, tzinfo=IST)  # a Monday


@pytest.fixture
async def kite(
    settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[tuple[RunningEmulator, Settings]]:
    save_session(settings.marketpulse_home)
    async with kite_emulator() as emulator:
        configured = settings.model_copy(update={"kite_api_url": emulator.api_url})
        assert SPEC.instruments is not None
        await sync_instruments(pool, "kite", await SPEC.instruments(configured, None))
        yield emulator, configured


async def _broker_candles(
    emulator: RunningEmulator, settings: Settings, interval: str
) -> list[tuple]:
    async with KiteRestClient.from_settings(settings) as client:
        rows = await client.historical(emulator.token("NSE:INFY"), interval, DAY,
                                       DAY + timedelta(hours=23))  # fmt: skip
    return [(r.open, r.high, r.low, r.close, r.volume) for r in rows]


async def _stored(pool: asyncpg.Pool, interval: str) -> list[tuple]:
    rows = await pool.fetch(
        "SELECT open, high, low, close, volume, status, start FROM candles "
        "WHERE symbol = 'INFY.NSE' AND interval = $1 ORDER BY start",
        interval,
    )
    assert {r["status"] for r in rows} == {"reconciled"}
    return [(r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in rows]


async def _wait_done(http: httpx.AsyncClient, url: str) -> dict:
    async with asyncio.timeout(60):
        while True:
            job = (await http.get(url)).json()
            if job["status"] in ("done", "failed"):
                return job
            await asyncio.sleep(0.1)


async def test_a_minute_backfill_over_the_api_matches_the_broker_in_every_interval(
    kite: tuple[RunningEmulator, Settings], pool: asyncpg.Pool
) -> None:
    emulator, settings = kite
    body = {"symbols": ["INFY.NSE"], "interval": "1m", "provider": "kite",
            "start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}  # fmt: skip
    async with (
        running_service(settings, frozenset({Role.API})) as endpoints,
        httpx.AsyncClient(base_url=endpoints.http) as http,
    ):
        accepted = await http.post("/api/historical/backfill", json=body)
        assert accepted.status_code == 202, accepted.text
        job = await _wait_done(http, accepted.json()["url"])
        assert job["status"] == "done" and job["errors"] == [] and job["progress"] == 1.0
        assert job["candles"] == 375 and job["requests"] == 1
        # Again: the same candles replace themselves, nothing is duplicated.
        again = await _wait_done(
            http, (await http.post("/api/historical/backfill", json=body)).json()["url"]
        )
        assert again["status"] == "done"
    assert await _stored(pool, "1m") == await _broker_candles(emulator, settings, "minute")
    # Higher intervals are rolled up from the minutes exactly as the broker aggregates them.
    assert await _stored(pool, "5m") == await _broker_candles(emulator, settings, "5minute")
    assert await _stored(pool, "1h") == await _broker_candles(emulator, settings, "60minute")
    assert await _stored(pool, "1d") == await _broker_candles(emulator, settings, "day")
    starts = await pool.fetch(
        "SELECT interval, min(start) AS first FROM candles WHERE symbol = 'INFY.NSE' "
        "GROUP BY interval"
    )
    assert {r["first"] for r in starts} == {datetime(2026, 3, 2, 3, 45, tzinfo=UTC)}


async def test_day_bars_backfilled_from_the_cli_fill_the_daily_history(
    kite: tuple[RunningEmulator, Settings], pool: asyncpg.Pool
) -> None:
    emulator, settings = kite
    env: dict[str, str | None] = {
        "MARKETPULSE_HOME": str(settings.marketpulse_home), "KITE_API_URL": emulator.api_url,
        "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
    }  # fmt: skip
    result = await invoke_cli(["backfill", "--symbols", "INFY.NSE", "--provider", "kite",
                               "--interval", "1d", "--from", "2026-03-02", "--to", "2026-03-07"],
                              env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ": done, 5 candles" in result.output
    async with KiteRestClient.from_settings(settings) as client:
        days = await client.historical(emulator.token("NSE:INFY"), "day", DAY,
                                       DAY + timedelta(days=4, hours=23))  # fmt: skip
    rows = await pool.fetch(
        "SELECT date, close, previous_close, source FROM price_history_daily "
        "WHERE symbol = 'INFY.NSE' ORDER BY date"
    )
    assert [(r["date"], r["close"]) for r in rows] == [(d.start.date(), d.close) for d in days]
    assert [r["previous_close"] for r in rows][1:] == [d.close for d in days][:-1]
    assert {r["source"] for r in rows} == {"kite"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"provider": "nobody"}, "unknown feed"),
        ({"provider": "sim"}, "no REST history"),
        ({"interval": "2m"}, "unknown candle interval"),
        ({"symbols": ["NOPE.NSE"]}, "NOPE.NSE"),
        ({"end": "2026-03-01T00:00:00+05:30"}, "must be before"),
    ],
)
async def test_bad_backfill_requests_are_refused_before_a_job_starts(
    kite: tuple[RunningEmulator, Settings], change: dict[str, object], needle: str
) -> None:
    _, settings = kite
    body = {"symbols": ["INFY.NSE"], "interval": "1m", "provider": "kite", "start": DAY.isoformat(),
            "end": (DAY + timedelta(days=1)).isoformat(), **change}  # fmt: skip
    async with (
        running_service(settings, frozenset({Role.API})) as endpoints,
        httpx.AsyncClient(base_url=endpoints.http) as http,
    ):
        resp = await http.post("/api/historical/backfill", json=body)
        missing = await http.get("/api/historical/backfill/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 422 and needle in resp.json()["detail"]
    assert missing.status_code == 404 and missing.json()["status_code"] == 404
