"""``/api/instruments/subscribe``, ``/unsubscribe`` and ``/subscriptions/list`` against a real
service (sim feed), Redis and PostgreSQL: persisted rows, streaming, restore after restart."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from marketpulse.bus.control import wanted_key
from marketpulse.config import Settings
from marketpulse.feeds.simulator.universe import token_for
from marketpulse.seed import seed_reference_data
from marketpulse.service import Role
from tests.support.polling import (
    first_tick,
    poll,
    sim_connected,
    streamed_symbols,
)
from tests.support.service import running_service


async def rows(pool: asyncpg.Pool) -> dict[tuple[str, str | None], tuple[str, str]]:
    """(symbol, feed) → (mode, source) of every persisted subscription."""
    records = await pool.fetch("SELECT symbol, feed, mode, source FROM subscriptions")
    return {(r["symbol"], r["feed"]): (r["mode"], r["source"]) for r in records}


async def applied(http: httpx.AsyncClient, command_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await poll(
        http, f"/subscribe/{command_id}", lambda b: b["status"] != "pending"
    )
    return result


async def test_subscribing_by_symbol_persists_a_row_and_the_feed_streams_it(
    two_symbols: Settings, pool: asyncpg.Pool
) -> None:
    async with running_service(two_symbols) as service:
        async with httpx.AsyncClient(base_url=service.http) as http:
            await sim_connected(http)
            resp = await http.post("/api/instruments/subscribe",
                                   json={"symbols": ["NSE:TCS"], "mode": "quote"})  # fmt: skip
            assert resp.status_code == 202, resp.text
            body = resp.json()
            assert body["symbols"] == ["TCS.NSE"] and body["status"] == "pending"
            assert body["feeds"] == ["sim"]
            assert (await applied(http, body["command_id"]))["feeds"] == {"sim": "ok"}
            assert "TCS.NSE" in await streamed_symbols(http)
        tick = await first_tick(service.ws, "TCS.NSE")
        assert tick["mode"] == "quote"
    persisted = await rows(pool)
    assert persisted[("TCS.NSE", None)] == ("quote", "api")
    # What SUBSCRIBE asked for is recorded too, under its own source.
    assert persisted[("RELIANCE.NSE", "sim")] == ("full", "settings")


async def test_subscribing_by_provider_token_resolves_through_the_instrument_master(
    two_symbols: Settings, pool: asyncpg.Pool
) -> None:
    await seed_reference_data(pool, two_symbols)  # sim tokens in instrument_providers
    token = token_for("WIPRO.NSE")
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        resp = await http.post(
            "/api/instruments/subscribe",
            json={"tokens": [{"provider": "sim", "token": token, "exchange": "NSE"}],
                  "mode": "ltp", "feed": "sim"},
        )  # fmt: skip
        assert resp.status_code == 202, resp.text
        assert resp.json()["symbols"] == ["WIPRO.NSE"]
        assert (await applied(http, resp.json()["command_id"]))["status"] == "applied"
        await poll(http, "/symbols", lambda b: "WIPRO.NSE" in {s["symbol"] for s in b["symbols"]})
        tick = await first_tick(service.ws, "WIPRO.NSE")
        assert tick["mode"] == "ltp"
    assert (await rows(pool))[("WIPRO.NSE", "sim")] == ("ltp", "api")


async def test_unsubscribing_removes_the_row_and_stops_the_stream(
    two_symbols: Settings, pool: asyncpg.Pool
) -> None:
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        resp = await http.post("/api/instruments/subscribe", json={"symbols": ["TCS.NSE"]})
        await applied(http, resp.json()["command_id"])
        assert ("TCS.NSE", None) in await rows(pool)
        resp = await http.post("/api/instruments/unsubscribe", json={"symbols": ["TCS.NSE"]})
        assert resp.status_code == 202, resp.text
        assert (await applied(http, resp.json()["command_id"]))["status"] == "applied"
        await poll(http, "/symbols", lambda b: "TCS.NSE" not in {s["symbol"] for s in b["symbols"]})
    assert ("TCS.NSE", None) not in await rows(pool)


async def test_the_list_pages_and_filters_by_feed_and_mode(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    # The API alone (no ingest): changes are persisted and wait for a feed to start.
    async with (
        running_service(settings, frozenset({Role.API})) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        for symbols, mode, feed in [
            (["TCS.NSE", "INFY.NSE", "WIPRO.NSE"], "ltp", None),
            (["SBIN.NSE"], "quote", "sim"),
            (["ITC.NSE"], "full", "sim"),
        ]:
            body = {"symbols": symbols, "mode": mode, "feed": feed}
            resp = await http.post("/api/instruments/subscribe", json=body)
            assert resp.status_code == 202, resp.text
            assert resp.json()["status"] == "persisted" and resp.json()["command_id"] is None
        page = (await http.get("/api/instruments/subscriptions/list",
                               params={"limit": 2, "offset": 0})).json()  # fmt: skip
        assert page["total"] == 5
        assert [i["symbol"] for i in page["items"]] == ["INFY.NSE", "ITC.NSE"]
        rest = (await http.get("/api/instruments/subscriptions/list",
                               params={"limit": 2, "offset": 4})).json()  # fmt: skip
        assert [i["symbol"] for i in rest["items"]] == ["WIPRO.NSE"]
        by_feed = (await http.get("/api/instruments/subscriptions/list",
                                  params={"feed": "sim"})).json()  # fmt: skip
        assert {i["symbol"] for i in by_feed["items"]} == {"SBIN.NSE", "ITC.NSE"}
        by_mode = (await http.get("/api/instruments/subscriptions/list",
                                  params={"mode": "ltp"})).json()  # fmt: skip
        assert by_mode["total"] == 3
        item = by_mode["items"][0]
        assert item["feed"] is None and item["source"] == "api" and item["created_at"]
        for params in ({"limit": 0}, {"offset": 10**19}, {"feed": "s\x00m"}):
            bad = await http.get("/api/instruments/subscriptions/list", params=params)
            assert bad.status_code == 422 and bad.json()["status_code"] == 422, params


async def test_a_restarted_ingest_restores_the_persisted_subscriptions_from_postgresql(
    two_symbols: Settings, redis: aioredis.Redis
) -> None:
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        body = {"symbols": ["HDFCBANK.NSE", "^NSEI"], "mode": "quote"}
        resp = await http.post("/api/instruments/subscribe", json=body)
        await applied(http, resp.json()["command_id"])
    # Redis forgets the wanted set and the tracked list (a flushed cache): only PostgreSQL
    # remembers what was subscribed.
    await redis.delete(wanted_key(two_symbols, "sim"), two_symbols.subscriptions_key)
    async with (
        running_service(two_symbols) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        await sim_connected(http)
        listed = await poll(http, "/symbols", lambda b: b["count"] == 4)
        modes = {s["symbol"]: s["mode"] for s in listed["symbols"]}
        assert modes == {"RELIANCE.NSE": "full", "INFY.NSE": "full",
                         "HDFCBANK.NSE": "quote", "NIFTY50.NSE_INDEX": "quote"}  # fmt: skip
        tick = await first_tick(service.ws, "HDFCBANK.NSE")
        assert tick["symbol"] == "HDFCBANK.NSE" and tick["mode"] == "quote"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"tokens": [{"provider": "sim", "token": "999"}]}, "unknown sim token 999"),
        ({"symbols": ["BAD.XYZ"]}, "unknown exchange"),
        ({"symbols": ["TCS.NSE"], "tokens": [{"provider": "sim", "token": "1"}]}, "exactly one"),
        ({"mode": "full"}, "exactly one"),
        ({"symbols": []}, "at least 1"),
        ({"symbols": ["TCS.NSE"], "mode": "deep"}, "ltp"),
        ({"symbols": ["TCS.NSE"], "feed": "nosuch"}, "unknown feed 'nosuch'"),
        ({"tokens": [{"provider": "", "token": "1"}]}, "at least 1 character"),
        ({"tokens": [{"provider": "sim", "token": "1\u0000"}]}, "should match pattern"),
    ],
)
async def test_bad_subscription_requests_are_422_and_change_nothing(
    settings: Settings, pool: asyncpg.Pool, body: dict[str, Any], needle: str
) -> None:
    async with (
        running_service(settings, frozenset({Role.API})) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):
        for path in ("/api/instruments/subscribe", "/api/instruments/unsubscribe"):
            resp = await http.post(path, json=body)
            assert resp.status_code == 422, resp.text
            assert resp.json()["status_code"] == 422
            assert needle in json.dumps(resp.json()["detail"])
    assert await rows(pool) == {}
