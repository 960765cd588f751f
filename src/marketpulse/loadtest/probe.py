"""How long ticks take to reach Redis: sampled from the firehose during the measuring window.

The end-to-end latency (``ts_recv`` → WebSocket client) says how late ticks arrive, not where
they waited. A firehose entry's id is the Redis server's clock (milliseconds) when ingest's
XADD was applied, and its tick carries ``ts_recv`` (nanoseconds, stamped when the feed read the
frame, on the same host's clock), so ``id − ts_recv`` is that tick's ingest → Redis latency:
decoding, buffering, the pipelined write and Redis getting to it. The rest of the end-to-end
figure is the fan-out (the API reading the firehose, writing frames, the client reading them).

Reading every entry would cost the runner about as much CPU as a store worker, on the same two
cores it measures. So the probe asks each shard for its newest entry every
:data:`PROBE_INTERVAL` seconds — a few hundred samples a second, taken at times unrelated to the
feed's frames. Entry ids carry whole milliseconds, so each sample is low by up to 1 ms.
"""

from __future__ import annotations

import array
import asyncio
from typing import Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketpulse.bus.firehose import TICK_FIELD, Entry
from marketpulse.model import decode_tick

PROBE_INTERVAL: Final = 0.01


def ingest_latency_ns(entry: Entry) -> int | None:
    """Redis arrival (the entry id's milliseconds) minus the tick's ``ts_recv``, in ns; ``None``
    for an entry without a tick or a receive stamp."""
    entry_id, fields = entry
    try:
        ts_recv = decode_tick(fields.get(TICK_FIELD, b"")).ts_recv
    except msgspec.DecodeError:
        return None
    if ts_recv is None:
        return None
    return int(entry_id.partition(b"-")[0]) * 1_000_000 - ts_recv


async def probe_firehose(redis: aioredis.Redis, keys: list[str], samples: array.array[int]) -> None:
    """Append one sample per shard and round whose newest entry is new, until cancelled.
    A Redis error skips the round: the probe must never end a run."""
    newest: dict[str, bytes] = {}
    while True:
        try:
            pipe = redis.pipeline(transaction=False)
            for key in keys:
                pipe.xrevrange(key, count=1)
            replies = cast(list[list[Entry]], await pipe.execute())
        except (RedisError, OSError):
            replies = []
        for key, reply in zip(keys, replies, strict=False):
            if not reply or newest.get(key) == reply[0][0]:
                continue
            newest[key] = reply[0][0]
            latency = ingest_latency_ns(reply[0])
            if latency is not None:
                samples.append(latency)
        await asyncio.sleep(PROBE_INTERVAL)
