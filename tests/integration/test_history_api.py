"""The history API on a real server: candles built live from the simulator, scripted history
read back through every endpoint, and the validation errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect

from marketpulse.config import Settings
from marketpulse.service import Role
from marketpulse.store.candles import close_due_candles
from tests.integration.test_candles import DAY, at, store, tick
from tests.support.service import running_service


async def test_live_candles_account_for_every_stored_tick_and_stream_over_websocket(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with running_service(settings) as endpoints, httpx.AsyncClient() as http:
        async with connect(endpoints.ws) as ws:
            await ws.send(json.dumps({"message_type": "subscribe",
                                      "channel": "candles:1m:reliance.nse"}))  # fmt: skip
            update = None
            async with asyncio.timeout(20):
                while update is None:
                    message = json.loads(await ws.recv())
                    if message["message_type"] == "data":
                        update = message
        assert update["channel"] == "candles:1m:RELIANCE.NSE"
        candle = update["data"]
        assert candle["symbol"] == "RELIANCE.NSE" and candle["interval"] == "1m"
        assert candle["low"] <= candle["open"] <= candle["high"] and candle["ticks"] > 0
        body = (
            await http.get(
                f"{endpoints.http}/api/historical/candles",
                params={"symbol": "RELIANCE.NSE", "interval": "1m"},
            )
        ).json()
        assert body["count"] >= 1 and body["candles"][-1]["status"] in ("live", "closed")
    # After the graceful stop every stored tick is in exactly one candle of each interval.
    stored = await pool.fetchval("SELECT count(*) FROM ticks WHERE symbol = 'RELIANCE.NSE'")
    per_interval = await pool.fetch(
        "SELECT interval, sum(ticks) AS n FROM candles WHERE symbol = 'RELIANCE.NSE' "
        "GROUP BY interval"
    )
    assert stored > 0
    assert {r["interval"]: r["n"] for r in per_interval} == dict.fromkeys(
        ("1m", "5m", "15m", "1h", "1d"), stored
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_service(settings, frozenset({Role.API})) as endpoints,
        httpx.AsyncClient(base_url=endpoints.http) as http,
    ):
        yield http


async def test_candles_and_intraday_bars_read_back_in_session_order(
    pool: asyncpg.Pool, api: httpx.AsyncClient
) -> None:
    await store(pool, [tick(at("09:15:10"), 100.0, 1000), tick(at("09:16:05"), 99.0, 1800),
                       tick(at("09:21:00"), 98.0, 2000)])  # fmt: skip
    start = at("09:00:00").isoformat()
    body = (await api.get("/api/historical/candles", params={
        "symbol": "NSE:RELIANCE", "interval": "5m", "start": start,
        "end": at("10:00:00").isoformat()})).json()  # fmt: skip
    assert body["symbol"] == "RELIANCE.NSE" and body["count"] == 2
    assert [(c["start"], c["open"], c["close"], c["volume"]) for c in body["candles"]] == [
        ("2026-03-02T03:45:00Z", 100.0, 99.0, 1800), ("2026-03-02T03:50:00Z", 98.0, 98.0, 200)
    ]  # fmt: skip
    intraday = (await api.get("/marketdata/intraday", params={
        "symbol": "RELIANCE.NSE", "start_date": "2026-03-02"})).json()  # fmt: skip
    assert [(d["timestamp"], d["volume"]) for d in intraday["data"]] == [
        ("2026-03-02T03:45:00Z", 1000), ("2026-03-02T03:46:00Z", 800),
        ("2026-03-02T03:51:00Z", 200),
    ]  # fmt: skip


async def test_daily_bars_carry_previous_close(pool: asyncpg.Pool, api: httpx.AsyncClient) -> None:
    tuesday = DAY + timedelta(days=1)
    await store(pool, [tick(at("09:15:10"), 100.0, 1000), tick(at("15:29:00"), 104.0, 5000),
                       tick(at("09:15:10", tuesday), 105.0, 700)])  # fmt: skip
    async with pool.acquire() as conn:
        await close_due_candles(conn, 2.0)
    params = {"symbol": "RELIANCE.NSE", "start_date": "2026-03-01", "end_date": "2026-03-31"}
    body = (await api.get("/marketdata/daily", params=params)).json()
    assert [(d["date"], d["open"], d["close"], d["volume"], d["previous_close"])
            for d in body["data"]] == [
        ("2026-03-02", 100.0, 104.0, 5000, None), ("2026-03-03", 105.0, 105.0, 700, 104.0)
    ]  # fmt: skip
    assert set(body["data"][0]) == {
        "date", "open", "high", "low", "close", "volume", "previous_close", "adj_close",
        "delivery_percentage",
    }  # fmt: skip


async def test_tick_pages_return_every_tick_once_in_order(
    pool: asyncpg.Pool, api: httpx.AsyncClient
) -> None:
    rows = [tick(at("09:15:00") + timedelta(seconds=i), 100.0 + i, 1000 + i) for i in range(7)]
    await store(pool, rows)
    params = {"symbol": "RELIANCE.NSE", "start": at("09:00:00").isoformat(),
              "end": at("10:00:00").isoformat(), "limit": 3}  # fmt: skip
    seen: list[float] = []
    pages = 0
    cursor = None
    while True:
        page = {**params, **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/api/historical/ticks", params=page)).json()
        pages += 1
        seen += [t["ltp"] for t in body["ticks"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [100.0 + i for i in range(7)] and pages == 3


@pytest.mark.parametrize(
    ("path", "params", "status", "needle"),
    [
        ("/api/historical/candles", {"symbol": "RELIANCE.NSE", "interval": "7m"}, 422,
         "unknown candle interval"),
        ("/api/historical/candles", {"symbol": "RELIANCE.NSE", "start": "2026-03-02T10:00:00Z",
                                     "end": "2026-03-02T09:00:00Z"}, 422, "must be before"),
        ("/api/historical/candles", {"symbol": "NOPE.NSE"}, 404, "unknown symbol"),
        ("/api/historical/candles", {"symbol": "RELIANCE.XX"}, 422, "XX"),
        ("/api/historical/candles", {"interval": "1m"}, 422, "symbol"),
        ("/api/historical/ticks", {"symbol": "RELIANCE.NSE", "cursor": "!!"}, 422,
         "invalid cursor"),
        ("/api/historical/ticks", {"symbol": "RELIANCE.NSE", "limit": 0}, 422, "limit"),
        ("/marketdata/intraday", {"symbol": "RELIANCE.NSE", "start_date": "2026-03-02",
                                  "interval": "1d"}, 422, "/marketdata/daily"),
        ("/marketdata/daily", {"symbol": "RELIANCE.NSE", "start_date": "2026-03-05",
                               "end_date": "2026-03-01"}, 422, "before start_date"),
        ("/marketdata/daily", {"symbol": "RELIANCE.NSE", "start_date": "yesterday"}, 422,
         "start_date"),
    ],
)  # fmt: skip
async def test_bad_history_requests_get_the_standard_error_body(
    api: httpx.AsyncClient, path: str, params: dict[str, object], status: int, needle: str
) -> None:
    resp = await api.get(path, params=params)
    body = resp.json()
    assert resp.status_code == status and body["status_code"] == status
    assert needle in json.dumps(body["detail"])


async def test_an_empty_range_of_a_known_symbol_is_an_empty_answer(
    pool: asyncpg.Pool, api: httpx.AsyncClient
) -> None:
    await store(pool, [tick(at("09:15:10"), 100.0, 1000)])
    now = datetime.now(UTC)
    body = (await api.get("/api/historical/candles", params={
        "symbol": "RELIANCE.NSE", "start": (now - timedelta(hours=1)).isoformat(),
        "end": now.isoformat()})).json()  # fmt: skip
    assert body["count"] == 0 and body["candles"] == []
