"""The API on a real server: REST endpoints and the WebSocket protocol, fed by the simulator."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from marketpulse.bus.status import FeedReport, write_reports
from marketpulse.config import Settings
from marketpulse.service import Endpoints
from tests.support.service import running_service


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Endpoints]:
    async with running_service(settings) as endpoints:
        yield endpoints


async def eventually(fetch: Any, check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"last value: {value}")
        await asyncio.sleep(0.2)


async def messages(ws: ClientConnection, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(json.loads(await ws.recv()))
    return out


async def data_messages(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while len(out) < count:
            msg = json.loads(await ws.recv())
            if msg["message_type"] == "data":
                out.append(msg)
    return out


async def read_until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(10):
        while True:  # what was buffered, then the end of the connection
            await ws.recv()


async def test_health_reports_redis_database_and_a_connected_feed(service: Endpoints) -> None:
    async with httpx.AsyncClient(base_url=service.http) as http:
        body = await eventually(
            lambda: http.get("/health"), lambda r: r.json()["feeds"].get("sim", {}).get("connected")
        )
    health = body.json()
    assert body.status_code == 200
    assert health["status"] == "ok"
    assert health["redis"]["ok"] and health["database"]["ok"]
    assert health["redis"]["used_memory"] > 0
    assert sum(health["redis"]["firehose_lengths"].values()) > 0
    sim = health["feeds"]["sim"]
    assert sim["instruments"] == 57
    assert sim["last_tick_age_seconds"] is not None and sim["last_tick_age_seconds"] < 5


async def test_stats_count_received_published_and_stored_ticks(service: Endpoints) -> None:
    async with httpx.AsyncClient(base_url=service.http) as http:
        resp = await eventually(
            lambda: http.get("/stats"), lambda r: r.json()["ticks"]["stored"] > 100
        )
        await asyncio.sleep(1.5)
        stats = (await http.get("/stats")).json()
    assert resp.status_code == 200
    ticks = stats["ticks"]
    assert ticks["received"] >= ticks["published"] >= ticks["stored"] > 100
    assert stats["rate_per_second"]["published"] > 0
    assert stats["feeds"]["sim"]["ticks_received"] > 0
    assert stats["last_tick_age_seconds"] < 5


async def test_stats_count_a_process_drops_once_however_many_feeds_it_runs(
    service: Endpoints, settings: Settings, redis: aioredis.Redis
) -> None:
    """Each feed's report repeats its process's publisher counters; /stats sums per process."""
    for feed in ("kite", "dhan"):
        report = FeedReport(
            name=feed, state="connected", connected=True, connections=1, instruments=1,
            reconnects=0, ticks_received=1, updated_at=time.time(), pid=999_999,
            host="elsewhere", dropped=7,
        )  # fmt: skip
        await write_reports(redis, settings, [report])
    async with httpx.AsyncClient(base_url=service.http) as http:
        stats = (await http.get("/stats")).json()
    assert stats["ticks"]["dropped"] == 7  # the simulator's own process dropped nothing


async def test_symbols_lists_what_the_feeds_stream(service: Endpoints) -> None:
    async with httpx.AsyncClient(base_url=service.http) as http:
        body = (await http.get("/symbols")).json()
    symbols = {s["symbol"]: s for s in body["symbols"]}
    assert body["count"] == 57
    assert {"RELIANCE.NSE", "INFY.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX"} <= set(symbols)
    assert symbols["RELIANCE.NSE"]["source"] == "sim"
    assert symbols["RELIANCE.NSE"]["mode"] == "full"


async def test_quotes_return_the_latest_snapshot_and_list_missing_symbols(
    service: Endpoints,
) -> None:
    async with httpx.AsyncClient(base_url=service.http) as http:
        resp = await eventually(
            lambda: http.get("/api/quotes", params={"symbols": "NSE:RELIANCE,INFY.NS,ZZZZ.NSE"}),
            lambda r: len(r.json().get("quotes", {})) == 2,
        )
    body = resp.json()
    assert body["missing"] == ["ZZZZ.NSE"]
    quote = body["quotes"]["RELIANCE.NSE"]
    assert quote["symbol"] == "RELIANCE.NSE" and quote["source"] == "sim"
    assert quote["ltp"] > 0 and len(quote["bids"]) == 5


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"symbols": "RELIANCE.XYZ"}, "unknown exchange"),
        ({"symbols": "RELIANCE"}, "has no exchange"),
        ({"symbols": ","}, "no symbols given"),
        ({}, "Field required"),
    ],
)
async def test_bad_quote_requests_get_a_422_with_the_standard_error_body(
    service: Endpoints, params: dict[str, str], needle: str
) -> None:
    async with httpx.AsyncClient(base_url=service.http) as http:
        resp = await http.get("/api/quotes", params=params)
    assert resp.status_code == 422
    body = resp.json()
    assert body["status_code"] == 422
    assert needle in json.dumps(body["detail"])


async def test_unknown_paths_get_the_standard_error_body(service: Endpoints) -> None:
    async with httpx.AsyncClient(base_url=service.http) as http:
        resp = await http.get("/nope")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Not Found", "status_code": 404}


async def test_websocket_client_receives_only_its_subscribed_channels(service: Endpoints) -> None:
    async with connect(service.ws) as a, connect(service.ws) as b:
        assert (await messages(a, 1))[0]["message_type"] == "info"
        assert (await messages(b, 1))[0]["message_type"] == "info"
        await a.send(json.dumps({"message_type": "subscribe", "channel": "RELIANCE.NSE"}))
        await b.send(json.dumps({"message_type": "subscribe", "channel": "NSE:INFY"}))
        await b.send(json.dumps({"message_type": "subscribe", "channel": "^NSEI"}))
        got_a = await data_messages(a, 5)
        got_b = await data_messages(b, 10)
    assert {m["channel"] for m in got_a} == {"RELIANCE.NSE"}
    assert {m["data"]["symbol"] for m in got_a} == {"RELIANCE.NSE"}
    assert {m["channel"] for m in got_b} <= {"INFY.NSE", "NIFTY50.NSE_INDEX"}
    assert all(m["data"]["source"] == "sim" and m["data"]["ltp"] > 0 for m in got_a + got_b)


async def test_websocket_subscribe_is_acknowledged_and_unsubscribe_stops_the_data(
    service: Endpoints,
) -> None:
    async with connect(service.ws) as ws:
        await messages(ws, 1)
        await ws.send(json.dumps({"message_type": "subscribe", "channel": "TCS.NSE"}))
        info = await messages(ws, 1)
        assert info[0] == {
            "message_type": "info",
            "message": "subscribed to TCS.NSE",
            "channel": "TCS.NSE",
            "tracked": True,
        }
        await data_messages(ws, 2)
        await ws.send(json.dumps({"message_type": "unsubscribe", "channel": "TCS.NSE"}))
        async with asyncio.timeout(5):
            while (msg := json.loads(await ws.recv()))["message_type"] != "info":
                pass
        assert msg["message"] == "unsubscribed from TCS.NSE"
        # Data the hub had already queued for this client before the unsubscribe was applied
        # may still follow the info message; read it off, then expect silence on the channel.
        loop = asyncio.get_running_loop()
        settle_until = loop.time() + 0.5
        while (remaining := settle_until - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    await ws.recv()
            except TimeoutError:
                break
        while True:
            try:
                async with asyncio.timeout(1.0):
                    leftover = json.loads(await ws.recv())
            except TimeoutError:
                break
            assert leftover["message_type"] != "data" or leftover["channel"] != "TCS.NSE" or False


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ("not json", "invalid message"),
        (json.dumps({"message_type": "dance", "channel": "TCS.NSE"}), "unknown message_type"),
        (json.dumps({"message_type": "subscribe"}), "needs a channel"),
        (json.dumps({"message_type": "subscribe", "channel": "TCS.XX"}), "unknown exchange"),
    ],
)
async def test_bad_websocket_messages_get_an_error_and_the_socket_stays_open(
    service: Endpoints, payload: str, needle: str
) -> None:
    async with connect(service.ws) as ws:
        await messages(ws, 1)
        await ws.send(payload)
        error = (await messages(ws, 1))[0]
        assert error["message_type"] == "error"
        assert needle in error["detail"]
        await ws.send(json.dumps({"message_type": "subscribe", "channel": "SBIN.NSE"}))
        assert (await messages(ws, 1))[0]["message_type"] == "info"


async def test_a_client_that_stops_reading_is_disconnected_and_others_keep_streaming(
    settings: Settings,
) -> None:
    fast = settings.model_copy(
        update={"sim_ticks_per_second": 3000, "ws_client_max_lag_seconds": 0.5}
    )
    async with running_service(fast) as service, httpx.AsyncClient(base_url=service.http) as http:
        symbols = [s["symbol"] for s in (await http.get("/symbols")).json()["symbols"]]
        # A small receive buffer so that "stops reading" fills the TCP window quickly.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", service.port))
        # close_timeout: once the closing handshake is done, how long the client waits for the
        # server to end TCP. The default (10 s) equalled read_until_closed's whole budget, so a
        # server slow to close after a kick made the test time out (seen once in CI).
        slow = await connect(service.ws, sock=sock, max_queue=1, close_timeout=2)
        async with connect(service.ws) as good:
            await messages(good, 1)
            await good.send(json.dumps({"message_type": "subscribe", "channel": "RELIANCE.NSE"}))
            for symbol in symbols:
                await slow.send(json.dumps({"message_type": "subscribe", "channel": symbol}))
            # From here the slow client never reads; the good one keeps being served.
            deadline = time.monotonic() + 60
            while True:
                await data_messages(good, 10)
                stats = (await http.get("/stats")).json()
                if stats["websocket"]["disconnected_slow"] >= 1:
                    break
                assert time.monotonic() < deadline, "slow client was never disconnected"
            assert stats["websocket"]["clients"] == 1
            with pytest.raises(ConnectionClosed):
                await read_until_closed(slow)
            # The close frame carries the reason when it could still be delivered; a client
            # that let its window fill may only see the connection end (1006).
            assert slow.close_code in (1008, 1006)
            if slow.close_code == 1008:
                assert "too slow" in (slow.close_reason or "")
            await data_messages(good, 20)
