"""``POST /api/instruments/sync`` against the Kite emulator: the background job downloads the
master, writes it, reports progress and counts; errors in the request are 422/409."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.config import Settings
from tests.integration.kite.helpers import RunningEmulator, kite_emulator
from tests.integration.reference.conftest import assert_error


@pytest.fixture
async def kite() -> AsyncIterator[RunningEmulator]:
    async with kite_emulator() as running:
        yield running


@pytest.fixture
async def kite_api(settings: Settings, kite: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"kite_api_url": kite.api_url}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def finished(api: httpx.AsyncClient, url: str) -> dict[str, Any]:
    seen: set[str] = set()
    async with asyncio.timeout(30):
        while True:
            job: dict[str, Any] = (await api.get(url)).json()
            seen.add(job["state"])
            if job["finished_at"] is not None:
                job["seen"] = seen
                return job
            await asyncio.sleep(0.05)


async def test_sync_job_loads_the_master_and_a_second_run_changes_nothing(
    kite_api: httpx.AsyncClient, kite: RunningEmulator, pool: asyncpg.Pool
) -> None:
    started = await kite_api.post("/api/instruments/sync", json={"provider": "kite"})
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "pending"
    # One job per provider at a time: the second request names the running one.
    assert_error(
        await kite_api.post("/api/instruments/sync", json={"provider": "kite"}),
        409,
        f"already running (job {started.json()['id']})",
    )
    job = await finished(kite_api, started.json()["url"])
    count = len(kite.emulator.listing.listings)
    assert job["state"] == "succeeded", job
    assert (job["rows_done"], job["rows_total"]) == (count, count)
    assert job["result"] == {
        "added": count,
        "changed": 0,
        "unchanged": 0,
        "removed": 0,
        "collisions": [],
    }
    assert job["error"] is None and job["provider"] == "kite"
    token = str(kite.token("NSE:INFY"))
    found = await kite_api.get(
        "/api/instruments/by-token", params={"provider": "kite", "token": token}
    )
    assert found.json()["instrument"]["symbol"] == "INFY.NSE"

    again = await kite_api.post("/api/instruments/sync", json={"provider": "kite"})
    second = await finished(kite_api, again.json()["url"])
    assert second["result"]["unchanged"] == count and second["result"]["added"] == 0
    assert await pool.fetchval("SELECT count(*) FROM instrument_sync_jobs") == 2


async def test_a_failing_download_is_a_failed_job_with_the_error(
    settings: Settings, kite: RunningEmulator
) -> None:
    # Nothing listens on port 9 (discard): the download fails, the job records why.
    app = create_app(settings.model_copy(update={"kite_api_url": "http://127.0.0.1:9"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api,
    ):
        started = await api.post("/api/instruments/sync", json={"provider": "kite"})
        job = await finished(api, started.json()["url"])
    assert job["state"] == "failed" and job["error"] and job["result"] is None


async def test_sync_request_errors(kite_api: httpx.AsyncClient) -> None:
    assert_error(
        await kite_api.post("/api/instruments/sync", json={"provider": "nope"}),
        422,
        "unknown feed 'nope'",
    )
    assert_error(
        await kite_api.post("/api/instruments/sync", json={"provider": "sim"}),
        422,
        "has no instrument master",
    )
    assert_error(await kite_api.post("/api/instruments/sync", json={}), 422)
    assert_error(
        await kite_api.get("/api/instruments/sync/6f1c2a9e-0000-4000-8000-000000000000"),
        404,
        "no instrument sync job",
    )
    assert_error(await kite_api.get("/api/instruments/sync/not-a-uuid"), 422)
