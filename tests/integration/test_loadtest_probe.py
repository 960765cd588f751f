"""The firehose probe against a real Redis: it samples new entries only, per shard, and a Redis
outage skips rounds instead of ending the run."""

from __future__ import annotations

import array
import asyncio
import time
import uuid

import redis.asyncio as aioredis

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD
from marketpulse.loadtest.probe import PROBE_INTERVAL, probe_firehose
from marketpulse.model import Tick, encode_tick


async def test_the_probe_samples_each_new_newest_entry_once(redis: aioredis.Redis) -> None:
    keys = [f"probe-{uuid.uuid4().hex[:8]}-{shard}" for shard in range(2)]
    samples: array.array[int] = array.array("q")
    task = asyncio.create_task(probe_firehose(redis, keys, samples))
    try:
        for _ in range(3):
            stamp = time.time_ns() - 5_000_000  # received 5 ms before it reaches Redis
            tick = encode_tick(Tick("kite", "738561", "NSE", "full", 1.0, ts_recv=stamp))
            await redis.xadd(keys[0], {KEY_FIELD: b"A.NSE", TICK_FIELD: tick})
            await asyncio.sleep(PROBE_INTERVAL * 5)  # several probe rounds per entry
    finally:
        task.cancel()
    assert len(samples) == 3  # one per new entry, however many rounds saw it
    assert all(3_000_000 <= s <= 50_000_000 for s in samples), list(samples)
    await redis.delete(*keys)


async def test_the_probe_keeps_going_while_redis_is_unreachable() -> None:
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1)
    samples: array.array[int] = array.array("q")
    task = asyncio.create_task(probe_firehose(unreachable, ["nowhere"], samples))
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel()
    await unreachable.aclose()
    assert len(samples) == 0
