"""Cancelling tasks that are inside Redis commands ends them, every time.

redis-py 8.1 sometimes returns normally from a command during which its task was cancelled;
a loop around such a call then never ends and a task group (ingest's, the API's) waits
forever. ``create_redis`` clients deliver the lost cancellation. (With redis-py 8.1.0's plain
client, this schedule left 5 of 20 groups stuck.)
"""

from __future__ import annotations

import asyncio
import random

import redis.asyncio as aioredis

from marketpulse.bus.connection import create_redis


async def _cycles(client: aioredis.Redis, key: str, cycles: int) -> int:
    """Run a blocking XREAD loop and two write loops in a task group, cancel it at a random
    moment, and count the cycles whose group did not end within 3 s."""

    async def blocking_reader() -> None:
        while True:
            await client.xread({f"{key}:stream": "0-0"}, count=10, block=1000)

    async def writer() -> None:
        while True:
            await client.hset(f"{key}:hash", "field", "value")
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(f"{key}:hash", "n", 1)
            await pipe.execute()
            await asyncio.sleep(0.005)

    async def group() -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(blocking_reader())
            tasks.create_task(writer())
            tasks.create_task(writer())

    rng = random.Random(7)
    stuck = 0
    for _ in range(cycles):
        task = asyncio.create_task(group())
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3)
        if not done:
            stuck += 1
            for _ in range(100):  # free the stuck loops before the next cycle
                task.cancel()
                for other in asyncio.all_tasks():
                    if other is not asyncio.current_task() and other.cancelling():
                        other.cancel()
                done, _ = await asyncio.wait({task}, timeout=0.05)
                if done:
                    break
    return stuck


async def test_cancelled_redis_loops_always_end(redis_url: str) -> None:
    key = f"cancel-test-{random.randrange(1 << 30)}"
    safe = create_redis(redis_url)
    try:
        assert await _cycles(safe, key, 40) == 0
    finally:
        await safe.aclose()
