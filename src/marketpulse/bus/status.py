"""Feed status reports: written by ingest processes, read by any API replica.

Roles share nothing but Redis, so the health of a feed lives in the ``{mp}:feeds`` hash, one
JSON report per feed, refreshed every second. A report older than a few seconds means the ingest
process that owned it is gone.
"""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from marketpulse.config import Settings

STALE_AFTER_SECONDS = 5.0


class FeedReport(msgspec.Struct, omit_defaults=True):
    name: str
    state: str
    connected: bool
    connections: int
    instruments: int
    reconnects: int
    ticks_received: int
    updated_at: float
    pid: int
    host: str
    last_tick_at: float | None = None
    last_error: str | None = None
    buffered: int = 0
    dropped: int = 0
    redis_ok: bool = True
    spilling: bool = False  # the publisher's counters: one process, repeated on each feed
    spilled: int = 0
    replayed: int = 0
    spill_backlog: int = 0
    token_expires_at: float | None = None  # the broker token's expiry (credentials store)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(FeedReport)


async def write_reports(
    redis: aioredis.Redis, settings: Settings, reports: list[FeedReport]
) -> None:
    if reports:
        mapping: dict[FieldT, EncodableT] = {r.name: _encoder.encode(r) for r in reports}
        await redis.hset(settings.feeds_key, mapping=mapping)


async def read_reports(redis: aioredis.Redis, settings: Settings) -> list[FeedReport]:
    raw = await redis.hgetall(settings.feeds_key)
    reports = []
    for value in raw.values():
        try:
            reports.append(_decoder.decode(value))
        except msgspec.DecodeError:
            continue  # written by an incompatible version; ignore rather than fail /health
    return sorted(reports, key=lambda r: r.name)


def fresh_reports(reports: list[FeedReport], now: float) -> list[FeedReport]:
    """The reports of feeds whose ingest process is alive (refreshed within
    :data:`STALE_AFTER_SECONDS`); a stopped feed is still reported, so it stays here."""
    return [r for r in reports if now - r.updated_at <= STALE_AFTER_SECONDS]


async def read_counters(redis: aioredis.Redis, settings: Settings) -> dict[str, int]:
    raw = await redis.hgetall(settings.stats_key)
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
