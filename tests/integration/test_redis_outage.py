"""Ingest keeps ticks through a Redis outage: buffered while down, flushed after, drops counted."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from marketpulse.bus.publisher import TickPublisher
from marketpulse.config import Settings
from marketpulse.model import Mode
from tests.support.ticks import sample_ticks
from tests.support.valkey import DisposableValkey


async def firehose_length(client: aioredis.Redis, settings: Settings) -> int:
    return sum([await client.xlen(k) for k in settings.firehose_keys])


async def test_ticks_published_while_redis_is_down_are_written_after_it_returns(
    valkey: DisposableValkey, settings: Settings
) -> None:
    settings = settings.model_copy(update={"redis_url": valkey.url})
    client = aioredis.Redis.from_url(valkey.url, socket_connect_timeout=0.5)
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    await publisher.publish(sample_ticks(500, 1, Mode.QUOTE))
    async with asyncio.timeout(10):
        while publisher.published < 500:
            await asyncio.sleep(0.05)

    valkey.kill()
    await publisher.publish(sample_ticks(700, 2, Mode.QUOTE))
    async with asyncio.timeout(10):
        while publisher.redis_ok:
            await asyncio.sleep(0.05)
    assert publisher.backlog == 700

    valkey.start()  # same port, empty: the firehose now holds only what was buffered
    async with asyncio.timeout(20):
        while publisher.backlog or not publisher.redis_ok:
            await asyncio.sleep(0.1)
    assert publisher.published == 1200
    assert publisher.dropped == 0
    assert await firehose_length(client, settings) == 700
    publisher.stop()
    await asyncio.wait_for(task, 10)
    await client.aclose()


async def test_beyond_the_buffer_bound_the_oldest_ticks_are_dropped_and_counted(
    valkey: DisposableValkey, settings: Settings
) -> None:
    settings = settings.model_copy(
        update={"redis_url": valkey.url, "ingest_buffer_max_ticks": 1000}
    )
    client = aioredis.Redis.from_url(valkey.url, socket_connect_timeout=0.5)
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    valkey.kill()
    batch = sample_ticks(1500, 3, Mode.QUOTE)
    await publisher.publish(batch)
    assert publisher.dropped == 500
    assert publisher.backlog == 1000
    valkey.start()
    async with asyncio.timeout(20):
        while publisher.backlog:
            await asyncio.sleep(0.1)
    # The newest 1000 survived, in order.
    entries = []
    for key in settings.firehose_keys:
        entries += [e[1][b"t"] for e in await client.xrange(key)]
    assert len(entries) == 1000
    assert publisher.received == 1500 and publisher.published == 1000
    publisher.stop()
    await asyncio.wait_for(task, 10)
    await client.aclose()


async def test_a_rejected_command_is_reported_and_does_not_block_the_rest(
    settings: Settings, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(update={"firehose_shards": 1})
    # Something else wrote a plain string where the firehose stream should be.
    await redis.set(settings.firehose_key(0), b"not a stream")
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    batch = sample_ticks(50, 4, Mode.QUOTE)
    await publisher.publish(batch)
    publisher.stop()
    await asyncio.wait_for(task, 10)
    assert "50 of" in caplog.text and "WRONGTYPE" in caplog.text
    snapshot = await redis.get(settings.snapshot_key(batch[-1].key, batch[-1].mode))
    assert snapshot is not None  # the snapshots still landed
