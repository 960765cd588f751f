"""Reading the recent market state back out of Redis: snapshots, their history, tick streams.

Used by the API and usable on its own (``MarketDataRepository(redis, settings)``). Scans use
SCAN in batches of ``CACHE_SCAN_BATCH_SIZE`` — never KEYS, which blocks Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from marketpulse.bus.connection import is_cluster
from marketpulse.bus.firehose import TICK_FIELD, Entry
from marketpulse.config import Settings
from marketpulse.model import Mode, Tick, decode_tick

_MODES = tuple(m.value for m in Mode)


def stream_bound(value: datetime | int | None, default: str) -> str:
    """A stream id bound from a datetime or epoch milliseconds (entry ids are receive times)."""
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give time bounds with a timezone (naive datetimes are ambiguous)")
        return str(int(value.timestamp() * 1000))
    return str(int(value))


class MarketDataRepository:
    """Snapshots (``{CACHE_KEY_PREFIX}:{symbol}:{mode}``), their history lists and the
    per-symbol streams, as typed ticks."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings

    async def latest(self, symbol: str, mode: Mode | str | None = None) -> Tick | None:
        """The newest snapshot in ``mode``, or the freshest of any mode when ``mode`` is None."""
        return (await self.latest_many([symbol], mode)).get(symbol)

    async def latest_many(
        self, symbols: Sequence[str], mode: Mode | str | None = None
    ) -> dict[str, Tick]:
        """One MGET for all ``symbols`` (one per slot in a cluster, where symbols hash apart);
        symbols without a snapshot are absent."""
        modes = _MODES if mode is None else (Mode(mode).value,)
        keys = [self._settings.snapshot_key(s, m) for s in symbols for m in modes]
        if not keys:
            return {}
        if is_cluster(self._redis):
            values = await cast(RedisCluster, self._redis).mget_nonatomic(keys)
        else:
            values = await self._redis.mget(keys)
        result: dict[str, Tick] = {}
        width = len(modes)
        for i, symbol in enumerate(symbols):
            best: Tick | None = None
            for raw in values[i * width : (i + 1) * width]:
                if raw is None:
                    continue
                tick = _decode(raw)
                if tick is not None and (best is None or (tick.ts_recv or 0) > (best.ts_recv or 0)):
                    best = tick
            if best is not None:
                result[symbol] = best
        return result

    async def history(self, symbol: str, mode: Mode | str, count: int | None = None) -> list[Tick]:
        """The most recent snapshots, newest first (at most ``CACHE_SNAPSHOT_COUNT``)."""
        limit = self._settings.cache_snapshot_count if count is None else count
        if limit <= 0:
            return []
        raw = await self._redis.lrange(
            self._settings.history_key(symbol, Mode(mode).value), 0, limit - 1
        )
        return [t for t in map(_decode, raw) if t is not None]

    async def scan_symbols(
        self, exchange: str | None = None, pattern: str = "*"
    ) -> AsyncIterator[tuple[str, str]]:
        """``(symbol, mode)`` of every live snapshot, optionally of one exchange (on every
        master of a cluster)."""
        prefix = self._settings.cache_key_prefix
        suffix = f".{exchange}" if exchange else ""
        match = f"{prefix}:{{{pattern}{suffix}}}:*"
        async for key in self._redis.scan_iter(
            match=match, count=self._settings.cache_scan_batch_size
        ):
            text = key.decode() if isinstance(key, bytes) else key
            if text.endswith(":history"):
                continue
            tagged, _, mode = text[len(prefix) + 1 :].rpartition(":")
            if mode in _MODES and tagged.startswith("{") and tagged.endswith("}"):
                yield tagged[1:-1], mode

    async def delete(self, symbol: str) -> int:
        """Remove a symbol's snapshots, histories and stream; returns keys deleted."""
        s = self._settings
        keys = [k for m in _MODES for k in (s.snapshot_key(symbol, m), s.history_key(symbol, m))]
        return int(await self._redis.delete(*keys, s.symbol_stream_key(symbol)))

    async def expire(self, symbol: str, seconds: int) -> None:
        """Let a symbol's cached state lapse after ``seconds``."""
        s = self._settings
        pipe = self._redis.pipeline(transaction=False)
        for m in _MODES:
            pipe.expire(s.snapshot_key(symbol, m), seconds)
            pipe.expire(s.history_key(symbol, m), seconds)
        pipe.expire(s.symbol_stream_key(symbol), seconds)
        await pipe.execute()

    async def get_ticks(
        self,
        symbol: str,
        start: datetime | int | None = None,
        end: datetime | int | None = None,
        count: int | None = None,
    ) -> list[Tick]:
        """Recent ticks of ``symbol`` from its stream, oldest first, between ``start`` and
        ``end`` (datetimes or epoch ms of receipt), at most ``count`` — what RedisTimeSeries
        would give, without the module."""
        entries = await self._redis.xrange(  # replies are bytes: the client never decodes
            self._settings.symbol_stream_key(symbol),
            min=stream_bound(start, "-"),
            max=stream_bound(end, "+"),
            count=count,
        )
        ticks = []
        for _, fields in cast(list[Entry], entries or []):
            tick = _decode(fields.get(TICK_FIELD))
            if tick is not None:
                ticks.append(tick)
        return ticks


def _decode(raw: bytes | str | None) -> Tick | None:
    if raw is None:
        return None
    try:
        return decode_tick(raw)
    except msgspec.DecodeError:
        return None  # written by something else: skip rather than fail a read
