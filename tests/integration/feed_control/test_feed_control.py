"""``POST /api/ws/stop`` / ``start`` and ``GET /api/ws/status`` against a real service running
the sim feed: the feed really disconnects and stays down, then streams again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.service import Role
from tests.support.polling import first_tick, poll, sim_connected
from tests.support.service import running_service
from tests.support.valkey import DisposableValkey


async def sim_status(http: httpx.AsyncClient) -> dict[str, Any]:
    resp = await http.get("/api/ws/status", params={"feed": "sim"})
    assert resp.status_code == 200, resp.text
    (view,) = resp.json()["feeds"]
    assert isinstance(view, dict)
    return view


async def test_stop_disconnects_the_feed_until_start_connects_it_again(
    two_symbols: Settings,
) -> None:
    async with running_service(two_symbols) as service:
        async with httpx.AsyncClient(base_url=service.http) as http:
            await sim_connected(http)
            stop = await http.post("/api/ws/stop", json={"feed": "sim"})
            assert stop.status_code == 200, stop.text
            assert stop.json()["feeds"] == {"sim": "ok"} and stop.json()["status"] == "applied"
            stopped = await sim_status(http)
            assert stopped["state"] == "stopped"
            assert stopped["connected"] is False and stopped["connections"] == 0
            assert stopped["instruments"] == 2  # the subscriptions are kept for the start
            # Stays stopped: no reconnect, no ticks.
            await asyncio.sleep(2.0)
            later = await sim_status(http)
            assert later["state"] == "stopped"
            assert later["ticks_received"] == stopped["ticks_received"]
            assert later["last_tick_age_seconds"] >= 2.0
            again = await http.post("/api/ws/stop", json={"feed": "sim"})
            assert again.status_code == 200 and again.json()["status"] == "applied"

            start = await http.post("/api/ws/start", json={"feed": "sim"})
            assert start.status_code == 200, start.text
            assert start.json()["feeds"] == {"sim": "ok"}
            running = await poll(http, "/api/ws/status",
                                 lambda b: b["feeds"][0]["state"] == "connected")  # fmt: skip
            view = running["feeds"][0]
            assert view["connected"] and view["connections"] == 1 and view["instruments"] == 2
            before = later["ticks_received"]
            await poll(http, "/api/ws/status", lambda b: b["feeds"][0]["ticks_received"] > before)
        tick = await first_tick(service.ws, "INFY.NSE")
        assert tick["symbol"] == "INFY.NSE"


async def test_stop_and_start_without_a_feed_name_apply_to_every_running_feed(
    two_symbols: Settings,
) -> None:
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        stop = await http.post("/api/ws/stop")
        assert stop.status_code == 200 and stop.json()["feeds"] == {"sim": "ok"}
        assert (await sim_status(http))["state"] == "stopped"
        start = await http.post("/api/ws/start", json={})
        assert start.status_code == 200 and start.json()["feeds"] == {"sim": "ok"}
        await poll(http, "/api/ws/status", lambda b: b["feeds"][0]["connected"])


async def test_status_reports_every_field_including_the_saved_token_expiry(
    two_symbols: Settings,
) -> None:
    expires = time.time() + 3600
    CredentialStore.in_home(two_symbols.marketpulse_home).save("sim", {}, expires)
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        body = await poll(http, "/api/ws/status",
                          lambda b: b.get("feeds") and b["feeds"][0]["last_tick_age_seconds"]
                          is not None)  # fmt: skip
        assert body["count"] == 1
        view = body["feeds"][0]
        assert view["feed"] == "sim" and view["state"] == "connected"
        assert view["connected"] is True and view["connections"] == 1
        assert view["instruments"] == 2 and view["reconnects"] == 0
        assert 0 <= view["last_tick_age_seconds"] < 5
        assert view["token_expires_at"] == pytest.approx(expires)
        assert 3500 < view["token_expires_in_seconds"] <= 3600
        assert view["last_error"] is None
        assert view["report_age_seconds"] < 5


@pytest.mark.parametrize("path", ["/api/ws/stop", "/api/ws/start"])
async def test_an_unknown_feed_is_404_and_a_feed_no_ingest_runs_is_404(
    two_symbols: Settings, path: str
) -> None:
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        unknown = await http.post(path, json={"feed": "nosuch"})
        assert unknown.status_code == 404
        assert unknown.json() == {"detail": unknown.json()["detail"], "status_code": 404}
        assert "unknown feed 'nosuch'" in unknown.json()["detail"]
        idle = await http.post(path, json={"feed": "kite"})
        assert idle.status_code == 404 and "not run by any ingest" in idle.json()["detail"]
        status = await http.get("/api/ws/status", params={"feed": "nosuch"})
        assert status.status_code == 404
        bad = await http.post(path, json={"feed": "sim"}, params={"wait": -1})
        assert bad.status_code == 422
        assert (await sim_status(http))["state"] == "connected"  # nothing was applied


async def test_without_an_ingest_process_feed_control_is_503(settings: Settings) -> None:
    async with (
        running_service(settings, frozenset({Role.API})) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        for resp in (
            await http.get("/api/ws/status"),
            await http.post("/api/ws/stop", json={"feed": "sim"}),
            await http.post("/api/ws/start"),
        ):
            assert resp.status_code == 503
            assert "no ingest process is running" in resp.json()["detail"]


async def test_with_redis_down_feed_control_is_503(
    settings: Settings, valkey: DisposableValkey
) -> None:
    private = settings.model_copy(update={"redis_url": valkey.url})
    async with (
        running_service(private, frozenset({Role.API})) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        valkey.kill()
        for resp in (
            await http.get("/api/ws/status"),
            await http.post("/api/ws/stop", json={"feed": "sim"}),
        ):
            assert resp.status_code == 503
            assert "Redis unavailable" in resp.json()["detail"]
