"""WebSocket fan-out cost controls: permessage-deflate only when WS_COMPRESSION is on, and the
hub's raw-RESP firehose read routing real Redis entries to subscribed clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from marketpulse.api.hub import Client, Hub
from marketpulse.bus.connection import create_redis
from marketpulse.config import Settings
from marketpulse.service import Role
from tests.support.service import running_service

API_ONLY = frozenset({Role.API})


async def negotiated_extensions(settings: Settings) -> str | None:
    """What the API answers a client that offers permessage-deflate (websockets does)."""
    async with running_service(settings, API_ONLY) as service, connect(service.ws) as ws:
        assert ws.response is not None
        assert json.loads(await ws.recv())["message_type"] == "info"
        return ws.response.headers.get("Sec-WebSocket-Extensions")


async def test_websocket_compression_is_refused_by_default(settings: Settings) -> None:
    assert settings.ws_compression is False
    assert await negotiated_extensions(settings) is None


async def test_websocket_compression_is_negotiated_when_ws_compression_is_on(
    settings: Settings,
) -> None:
    extensions = await negotiated_extensions(settings.model_copy(update={"ws_compression": True}))
    assert extensions is not None
    assert extensions.startswith("permessage-deflate")


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    assert settings.redis_url
    client = create_redis(settings.redis_url, cluster=False)
    hub = Hub(client, settings)
    try:
        yield hub
    finally:
        await client.aclose()


async def test_hub_routes_raw_firehose_entries_to_subscribers_only(
    hub: Hub, settings: Settings, redis: aioredis.Redis
) -> None:
    got: dict[str, list[str]] = {"a": [], "b": []}

    def collector(name: str) -> Client:
        async def send(message: str) -> None:
            got[name].append(message)

        return Client(send, max_pending=100, max_lag=5.0)

    a, b = collector("a"), collector("b")
    for client in (a, b):
        hub.add(client)
    hub.subscribe(a, "TCS.NSE")
    hub.subscribe(b, "INFY.NSE")
    tasks = [asyncio.create_task(t) for t in (hub.run(), a.write_loop(), b.write_loop())]
    shard0, shard1 = settings.firehose_keys
    try:
        async with asyncio.timeout(10):
            # The hub starts at "$": keep writing until its blocking read has seen some.
            while not got["a"] or not got["b"]:
                await redis.xadd(shard0, {"k": "TCS.NSE", "t": '{"ltp":1.5}'})
                await redis.xadd(shard1, {"k": "INFY.NSE", "t": '{"ltp":2.5}'})
                await redis.xadd(shard1, {"k": "SBIN.NSE", "t": '{"ltp":3.5}'})
                # A candle update written with its fields the other way round routes too.
                await redis.xadd(
                    settings.candle_stream_key, {"t": '{"o":1}', "k": "candles:1m:TCS.NSE"}
                )
                await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert hub.redis_ok
    assert {json.loads(m)["channel"] for m in got["a"]} == {"TCS.NSE"}
    assert json.loads(got["a"][0]) == {
        "message_type": "data",
        "channel": "TCS.NSE",
        "data": {"ltp": 1.5},
    }
    assert {json.loads(m)["data"]["ltp"] for m in got["b"]} == {2.5}


async def test_hub_reports_redis_loss_and_recovers_on_the_raw_connection(
    hub: Hub, settings: Settings, redis: aioredis.Redis
) -> None:
    got: list[str] = []

    async def send(message: str) -> None:
        got.append(message)

    client = Client(send, max_pending=100, max_lag=5.0)
    hub.add(client)
    hub.subscribe(client, "TCS.NSE")
    shard0 = settings.firehose_keys[0]
    # A key of the wrong type makes the XREAD fail with a Redis error reply.
    await redis.set(shard0, "not a stream")
    tasks = [asyncio.create_task(t) for t in (hub.run(), client.write_loop())]
    try:
        async with asyncio.timeout(10):
            while hub.redis_ok:
                await asyncio.sleep(0.02)
            await redis.delete(shard0)
            while not got:
                await redis.xadd(shard0, {"k": "TCS.NSE", "t": '{"ltp":1.5}'})
                await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert hub.redis_ok


async def test_batch_clients_get_their_data_messages_grouped_in_batch_frames(
    settings: Settings,
) -> None:
    fast = settings.model_copy(update={"sim_ticks_per_second": 2000})
    async with running_service(fast) as service, connect(service.ws + "?batch=true") as ws:
        assert json.loads(await ws.recv())["message_type"] == "info"
        channels = ["RELIANCE.NSE", "TCS.NSE", "INFY.NSE", "SBIN.NSE", "HDFCBANK.NSE"]
        for channel in channels:
            await ws.send(json.dumps({"message_type": "subscribe", "channel": channel}))
        largest = 0
        async with asyncio.timeout(20):
            while largest < 2:
                frame = json.loads(await ws.recv())
                if frame["message_type"] == "info":
                    continue
                assert frame["message_type"] == "batch"
                assert all(m["message_type"] == "data" for m in frame["messages"])
                assert {m["channel"] for m in frame["messages"]} <= set(channels)
                largest = max(largest, len(frame["messages"]))


async def test_an_invalid_batch_option_gets_an_error_and_unbatched_data(settings: Settings) -> None:
    async with running_service(settings) as service, connect(service.ws + "?batch=maybe") as ws:
        error = json.loads(await ws.recv())
        assert error["message_type"] == "error"
        assert error["status_code"] == 422
        assert "batch must be true or false" in error["detail"]
        await ws.send(json.dumps({"message_type": "subscribe", "channel": "RELIANCE.NSE"}))
        async with asyncio.timeout(15):
            while (frame := json.loads(await ws.recv()))["message_type"] != "data":
                assert frame["message_type"] == "info"
        assert frame["channel"] == "RELIANCE.NSE"
