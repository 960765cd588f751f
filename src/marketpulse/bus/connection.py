"""Redis connections with the options every role needs."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from marketpulse.config import redact_url


class RedisUnavailableError(RuntimeError):
    """Redis cannot be reached; the message names the URL (without password)."""


def _cancel_requests() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _deliver_swallowed_cancel(before: int) -> None:
    """redis-py 8.1 sometimes returns normally from a command during which its task was
    cancelled: the cancellation is lost and a loop around the call never ends (a task group
    or a shutdown then waits forever). A command that returns while a new cancel request is
    pending on its task raises the cancellation it should have raised."""
    if _cancel_requests() > before:
        raise asyncio.CancelledError


class CancelSafePipeline(Pipeline):
    """A pipeline whose ``execute`` never loses its task's cancellation."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        before = _cancel_requests()
        result = await super().execute(raise_on_error)
        _deliver_swallowed_cancel(before)
        return result


class CancelSafeRedis(aioredis.Redis):
    """``redis.asyncio.Redis`` whose commands and pipelines never lose a cancellation."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        before = _cancel_requests()
        result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        _deliver_swallowed_cancel(before)
        return result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return CancelSafePipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


def create_redis(url: str, *, timeout: float = 5.0, **options: Any) -> aioredis.Redis:
    """A client that returns bytes (no per-reply decode on the hot path), fails fast and
    never loses a cancellation (see :class:`CancelSafeRedis`)."""
    options.setdefault("decode_responses", False)
    options.setdefault("health_check_interval", 30)
    options.setdefault("retry_on_timeout", False)
    return CancelSafeRedis.from_url(url, socket_connect_timeout=timeout, **options)


async def check_redis(client: aioredis.Redis, url: str) -> None:
    """PING once, turning a failure into a clear :class:`RedisUnavailableError`."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis at {redact_url(url)}: {exc}") from exc
