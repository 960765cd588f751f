"""Throughput rates for ``/stats``, sampled from the shared counters in Redis.

Counters are cumulative and written by several processes, so a rate is only meaningful as the
difference between samples; each API replica samples once a second and keeps ten seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketpulse.bus.status import read_counters
from marketpulse.config import Settings

log = logging.getLogger(__name__)


class StatsSampler:
    def __init__(self, redis: aioredis.Redis, settings: Settings, window: int = 10) -> None:
        self._redis = redis
        self._settings = settings
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=window + 1)

    async def sample(self) -> dict[str, int]:
        counters = await read_counters(self._redis, self._settings)
        self._samples.append((time.monotonic(), counters))
        return counters

    def rates(self) -> dict[str, float]:
        if len(self._samples) < 2:
            return {}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        elapsed = t1 - t0
        if elapsed <= 0:
            return {}
        return {k: round((v - first.get(k, 0)) / elapsed, 1) for k, v in last.items()}

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except (RedisError, OSError) as exc:
                log.debug("stats sample failed: %s", exc)
            await asyncio.sleep(1.0)
