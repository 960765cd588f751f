"""Ingest → Redis: snapshots and the firehose, written in pipelined batches.

Feeds hand batches to :meth:`TickPublisher.publish`, which only appends to an in-memory buffer,
so a slow or unreachable Redis never blocks a broker socket (brokers disconnect readers that fall
behind). A single writer task drains the buffer in pipelines. While Redis is unreachable the
buffer keeps up to ``INGEST_BUFFER_MAX_TICKS``; beyond that the oldest ticks are dropped and
counted — reported in ``/stats`` and ``/health``, never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from redis.exceptions import RedisError

from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD, shard_of
from marketpulse.bus.resp import RespConnection, bulk, command, command_prefix
from marketpulse.config import Settings
from marketpulse.model import Tick, encode_tick

log = logging.getLogger(__name__)

_CHUNK = 2000


@dataclass(slots=True)
class _Sent:
    chunk: list[Tick]
    received_before: int  # the "received" counter already reported before this chunk
    replies: int


class TickPublisher:
    """Buffers ticks and writes them to Redis; one instance per ingest process."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url, "REDIS_URL must be resolved before publishing"
        self._connection = RespConnection(settings.redis_url)
        self._settings = settings
        self._buffer: deque[Tick] = deque()
        self._wakeup = asyncio.Event()
        # Everything of an XADD but the instrument key and the tick: fixed per shard.
        maxlen = str(settings.firehose_maxlen).encode()
        self._xadd_prefix = [
            command_prefix(10, b"XADD", key.encode(), b"MAXLEN", b"~", maxlen, b"*", KEY_FIELD)
            for key in settings.firehose_keys
        ]
        self._tick_field = bulk(TICK_FIELD)
        self._shards: dict[str, int] = {}
        self._stream_prefixes: dict[str, bytes] = {}
        self._history_upkeep: dict[bytes, tuple[int, float]] = {}  # pushes since trim, expired
        self._stopping = False
        self.received = 0
        self._received_counted = 0
        self.published = 0
        self.dropped = 0
        self.redis_ok = True
        self.last_error: str | None = None
        self.last_publish_at: float | None = None
        self._drop_logged_at = -1e9

    @property
    def backlog(self) -> int:
        return len(self._buffer)

    async def publish(self, batch: list[Tick]) -> None:
        """The feed supervisor's sink: accept a batch without waiting for Redis."""
        self.received += len(batch)
        self._buffer.extend(batch)
        self._enforce_bound()
        self._wakeup.set()

    def _enforce_bound(self) -> None:
        excess = len(self._buffer) - self._settings.ingest_buffer_max_ticks
        if excess > 0:
            for _ in range(excess):
                self._buffer.popleft()
            self.dropped += excess
            now = time.monotonic()
            if now - self._drop_logged_at >= 10.0:  # at most one line per 10 s, with the total
                self._drop_logged_at = now
                log.error(
                    "ingest buffer full (%d ticks): dropping the oldest, %d dropped so far; "
                    "Redis: %s",
                    self._settings.ingest_buffer_max_ticks,
                    self.dropped,
                    self.last_error or "too slow for the feed rate",
                )

    async def run(self) -> None:
        """Drain the buffer until :meth:`stop`; retries Redis failures with backoff."""
        try:
            await self._drain_forever()
        finally:
            await self._connection.close()

    async def _drain_forever(self) -> None:
        # Up to two chunks in flight on the connection: while Redis applies one, the next is
        # built and sent, so client and server work at the same time.
        inflight: deque[_Sent] = deque()
        delay = 0.1
        while True:
            try:
                if self._buffer and len(inflight) < 2:
                    count = min(_CHUNK, len(self._buffer))
                    chunk = [self._buffer.popleft() for _ in range(count)]
                    inflight.append(_Sent(chunk, self._received_counted, 0))
                    inflight[-1].replies = await self._send(chunk)
                    continue
                if inflight:
                    sent = inflight[0]
                    await self._connection.receive(sent.replies)
                    inflight.popleft()
                    self.published += len(sent.chunk)
                    self.last_publish_at = time.time()
                    if not self.redis_ok:
                        log.warning("Redis is reachable again; %d ticks buffered", self.backlog)
                    self.redis_ok = True
                    self.last_error = None
                    delay = 0.1
                    continue
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            except (RedisError, OSError) as exc:
                # Whatever was in flight is sent again (at least once: a chunk Redis applied
                # before the connection broke can be written twice).
                self._received_counted = (
                    inflight[0].received_before if inflight else (self._received_counted)
                )
                while inflight:
                    self._buffer.extendleft(reversed(inflight.pop().chunk))
                self._enforce_bound()
                if self.redis_ok:
                    log.error("Redis write failed, buffering ticks and retrying: %s", exc)
                self.redis_ok = False
                self.last_error = str(exc)
                if self._stopping and delay >= 2.0:
                    return  # shutting down and Redis stays down: give up, counted as backlog
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def stop(self) -> None:
        """Ask :meth:`run` to flush what is buffered and return (await its task to wait)."""
        self._stopping = True
        self._wakeup.set()

    def _symbol_stream_prefix(self, key: str) -> bytes:
        prefix = self._stream_prefixes.get(key)
        if prefix is None:
            settings = self._settings
            prefix = self._stream_prefixes[key] = command_prefix(
                8, b"XADD", settings.symbol_stream_key(key).encode(), b"MAXLEN", b"~",
                str(settings.symbol_stream_maxlen).encode(), b"*", TICK_FIELD,
            )  # fmt: skip
        return prefix

    async def _send(self, chunk: list[Tick]) -> int:
        """Pack and send one chunk — firehose and per-symbol stream entries for every tick, then
        per instrument and mode the latest snapshot and its history — and return how many
        replies to read for it."""
        settings = self._settings
        shard_cache = self._shards
        shards = settings.firehose_shards
        xadd_prefix = self._xadd_prefix
        tick_field = self._tick_field
        symbol_streams = settings.symbol_stream_maxlen > 0
        parts: list[bytes] = []
        append = parts.append
        by_snapshot: dict[tuple[str, str], list[bytes]] = {}
        for tick in chunk:
            data = encode_tick(tick)
            key = tick.key
            shard = shard_cache.get(key)
            if shard is None:
                shard = shard_cache[key] = shard_of(key, shards)
            data_bulk = bulk(data)
            append(xadd_prefix[shard])
            append(bulk(key.encode()))
            append(tick_field)
            append(data_bulk)
            if symbol_streams:
                append(self._symbol_stream_prefix(key))
                append(data_bulk)
            snapshots = by_snapshot.get((key, tick.mode))
            if snapshots is None:
                by_snapshot[(key, tick.mode)] = [data]
            else:
                snapshots.append(data)
        replies = len(chunk) * (2 if symbol_streams else 1)
        ttl = str(settings.cache_ttl_seconds).encode()
        keep = settings.cache_snapshot_count
        now = time.monotonic()
        refresh_after = settings.cache_ttl_seconds / 4
        upkeep = self._history_upkeep
        for (key, mode), datas in by_snapshot.items():
            snapshot = settings.snapshot_key(key, mode).encode()
            append(command(b"SET", snapshot, datas[-1], b"EX", ttl))
            replies += 1
            if not keep:
                continue
            history = settings.history_key(key, mode).encode()
            append(command(b"LPUSH", history, *datas[-keep:]))
            replies += 1
            # Trimming and the TTL refresh are amortised: the list may hold up to twice the
            # bound between trims (readers take the first N), and the TTL is renewed well
            # before it can lapse while the instrument ticks.
            pushed, expired_at = upkeep.get(history, (0, -1e18))
            pushed += min(len(datas), keep)
            if pushed >= keep:
                append(command(b"LTRIM", history, b"0", b"%d" % (keep - 1)))
                replies += 1
                pushed = 0
            if now - expired_at >= refresh_after:
                append(command(b"EXPIRE", history, ttl))
                replies += 1
                expired_at = now
            upkeep[history] = (pushed, expired_at)
        # "received" rides along so the shared counters always read received >= published.
        received = self.received
        stats = settings.stats_key.encode()
        append(command(b"HINCRBY", stats, b"received", b"%d" % (received - self._received_counted)))
        append(command(b"HINCRBY", stats, b"published", b"%d" % len(chunk)))
        await self._connection.send(b"".join(parts))
        self._received_counted = received
        return replies + 2
