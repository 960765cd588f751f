"""Fixtures of the cluster tests: the session's local 3-master cluster and settings using it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from marketpulse.bus.connection import create_redis
from marketpulse.config import Settings
from tests.support.cluster import LocalCluster, redis_cluster

__all__ = ["redis_cluster"]


@pytest.fixture
def cluster_settings(settings: Settings, redis_cluster: LocalCluster) -> Settings:
    """The test's settings (own key prefixes, own database) with Redis being the cluster."""
    return settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": "true"})


@pytest.fixture
async def cluster_redis(redis_cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    """The service's own cluster client (redis-py ``RedisCluster``, cancel-safe)."""
    client = create_redis(redis_cluster.url, cluster=True)
    yield client
    await client.aclose()
