"""Redis connections with the options every role needs."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketpulse.config import redact_url


class RedisUnavailableError(RuntimeError):
    """Redis cannot be reached; the message names the URL (without password)."""


def create_redis(url: str, *, timeout: float = 5.0) -> aioredis.Redis:
    """A client that returns bytes (no per-reply decode on the hot path) and fails fast."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )


async def check_redis(client: aioredis.Redis, url: str) -> None:
    """PING once, turning a failure into a clear :class:`RedisUnavailableError`."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis at {redact_url(url)}: {exc}") from exc
