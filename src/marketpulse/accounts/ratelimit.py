"""A fixed-window request counter in Redis, shared by every API replica."""

from __future__ import annotations

import redis.asyncio as aioredis

from marketpulse.bus.connection import ready_for_transactions


async def hit(redis: aioredis.Redis, key: str, limit: int, window_seconds: int) -> int | None:
    """Count one request against ``key``; ``None`` while within ``limit`` per window, else the
    seconds until the window ends (for ``Retry-After``)."""
    await ready_for_transactions(redis)
    pipe = redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, window_seconds, nx=True)
    pipe.ttl(key)
    count, _, ttl = await pipe.execute()
    if int(count) <= limit:
        return None
    return max(1, int(ttl))
