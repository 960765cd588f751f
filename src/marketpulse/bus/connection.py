"""Redis connections with the options every role needs."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
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


class CancelSafeClusterPipeline(ClusterPipeline):
    """A cluster pipeline whose ``execute`` never loses its task's cancellation."""

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        before = _cancel_requests()
        result = await super().execute(raise_on_error, allow_redirections)
        _deliver_swallowed_cancel(before)
        return result


class CancelSafeRedisCluster(RedisCluster):
    """``redis.asyncio.cluster.RedisCluster`` with the same cancellation guarantee as
    :class:`CancelSafeRedis`; it routes each command to the master owning its key's slot."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        before = _cancel_requests()
        result = await super().execute_command(*args, **kwargs)
        _deliver_swallowed_cancel(before)
        return result

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            super().pipeline(transaction, shard_hint)  # raises the base's error
        return CancelSafeClusterPipeline(self, transaction)  # type: ignore[abstract]


_detected: dict[str, bool] = {}


def detect_cluster(url: str, timeout: float = 5.0) -> bool:
    """Whether the server at ``url`` runs in cluster mode (``INFO cluster`` says
    ``cluster_enabled:1``); asked once per URL and process. A server that cannot be reached
    counts as a single server (not remembered): :func:`check_redis` then reports it."""
    known = _detected.get(url)
    if known is not None:
        return known
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as c:
            info = cast(dict[str, Any], c.info("cluster"))
    except (RedisError, OSError):
        return False
    enabled = _detected[url] = bool(info.get("cluster_enabled"))
    return enabled


def is_cluster(client: object) -> bool:
    """Whether ``client`` (as :func:`create_redis` made it) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


async def ready_for_transactions(client: aioredis.Redis) -> None:
    """Make sure a cluster client has read the slot map before a ``pipeline(transaction=True)``
    is filled: redis-py 8.1 queues each command of a cluster transaction through
    ``asyncio.run`` in a thread, and a client that initialises itself there keeps connections
    of that thread's (then closed) event loop. A no-op for a single server or once done."""
    if isinstance(client, RedisCluster):
        await client.initialize()


def create_redis(
    url: str, *, timeout: float = 5.0, cluster: bool | None = None, **options: Any
) -> aioredis.Redis:
    """A client that returns bytes (no per-reply decode on the hot path), fails fast and
    never loses a cancellation (see :class:`CancelSafeRedis`).

    Against a Redis Cluster (``cluster=True``, or ``None`` and :func:`detect_cluster` says so —
    ``REDIS_CLUSTER`` via :attr:`Settings.cluster_mode`) it is a :class:`CancelSafeRedisCluster`.
    That client has the same command methods, so it is typed as ``aioredis.Redis`` for its
    callers; the few places whose commands span slots branch on :func:`is_cluster`.
    """
    options.setdefault("decode_responses", False)
    options.setdefault("health_check_interval", 30)
    if cluster is None:
        cluster = detect_cluster(url, timeout)
    if cluster:
        client = CancelSafeRedisCluster.from_url(url, socket_connect_timeout=timeout, **options)
        return cast(aioredis.Redis, client)
    options.setdefault("retry_on_timeout", False)
    return CancelSafeRedis.from_url(url, socket_connect_timeout=timeout, **options)


async def check_redis(client: aioredis.Redis, url: str) -> None:
    """PING once, turning a failure into a clear :class:`RedisUnavailableError`."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis at {redact_url(url)}: {exc}") from exc
