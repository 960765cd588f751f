"""The store role: firehose consumer group → PostgreSQL, at least once, stored exactly once.

Entries are read with XREADGROUP, buffered up to ``TICK_BUFFER_SIZE`` or
``FLUSH_INTERVAL_SECONDS``, COPYed in one transaction and only then XACKed. A worker that dies
leaves its entries pending: restarted under the same consumer name it re-reads them first, and
any worker XAUTOCLAIMs entries another consumer left idle for ``STORE_CLAIM_IDLE_SECONDS``.
While PostgreSQL is down the batch is kept and retried with backoff; nothing is acknowledged, so
nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import cast

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from marketpulse.bus.candles import CandlePublisher
from marketpulse.bus.firehose import TICK_FIELD, Entry, stream_entries
from marketpulse.config import Settings
from marketpulse.model import Candle, decode_tick
from marketpulse.store.candles import close_due_candles, rollup_candles
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.store.partitions import PartitionManager
from marketpulse.store.ticks import Row, copy_ticks, copy_ticks_with_candles, row_days, tick_row

log = logging.getLogger(__name__)

READ_ENTRIES = 2000
"""Most firehose entries one XREADGROUP asks for, over all shards. A batch still fills up to
``TICK_BUFFER_SIZE`` across reads; one reply of 10,000 entries would be megabytes that Redis
builds in one go while every other client — ingest's writes first — waits."""


@dataclass(slots=True)
class _Batch:
    rows: list[Row] = field(default_factory=list)
    ids: dict[str, list[bytes]] = field(default_factory=dict)  # stream → entry ids to ack
    started: float = 0.0

    def __len__(self) -> int:
        return sum(len(v) for v in self.ids.values())


class TickStoreWorker:
    """One consumer of the ``store`` group across every firehose shard."""

    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings) -> None:
        self._redis = redis
        self._pool = pool
        self._settings = settings
        self._group = settings.store_consumer_group
        self._consumer = settings.consumer_name
        self._streams = settings.firehose_keys
        self._partitions = PartitionManager(
            settings.partition_days_ahead, settings.tick_retention_days
        )
        self._retention_checked = -1e18
        self._batch = _Batch()
        self._unacked: dict[str, list[bytes]] = {}
        self._stopping = asyncio.Event()
        self._last_claim = 0.0
        self._last_close = 0.0
        self._candle_publisher: CandlePublisher | None = None
        self.stored = 0
        self.candles_updated = 0
        self.duplicates = 0
        self.malformed = 0
        self.database_ok = True
        self.redis_ok = True
        self.last_error: str | None = None
        self.last_flush_at: float | None = None

    def stop(self) -> None:
        """Finish the current batch (commit + ack) and return from :meth:`run`."""
        self._stopping.set()

    async def ensure_groups(self) -> None:
        for stream in self._streams:
            try:
                await self._redis.xgroup_create(stream, self._group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        """Consume until :meth:`stop`; cancelling instead simulates a crash (nothing acked)."""
        await self._retry_redis(self.ensure_groups)
        await self._apply_retention()
        await self._retry_redis(self._read_own_pending)
        block_ms = max(1, int(self._settings.flush_interval_seconds * 1000))
        while not self._stopping.is_set():
            room = self._settings.tick_buffer_size - len(self._batch)
            per_stream = max(1, min(room, READ_ENTRIES) // len(self._streams))
            try:
                await self._claim_abandoned()
                reply = await self._redis.xreadgroup(
                    self._group, self._consumer, dict.fromkeys(self._streams, ">"),
                    count=per_stream, block=block_ms,
                )  # fmt: skip
                self.redis_ok = True
            except ResponseError as exc:
                reply = []
                if "NOGROUP" not in str(exc):
                    await self._redis_failed(exc)
                    continue
                # The stream or group vanished (Redis restarted without persistence, or a
                # key was deleted): recreate it from the start of whatever is in the stream.
                log.warning("firehose consumer group missing (%s); recreating it", exc)
                await self._retry_redis(self.ensure_groups)
            except (RedisError, OSError) as exc:
                await self._redis_failed(exc)
                reply = []
            for stream, entries in stream_entries(reply):
                self._add(stream.decode(), entries)
            if self._due():
                await self._flush()
            await self._ack_pending()
            await self._maintain_candles()
        await self._drain()
        await self._maintain_candles(force=True)
        if self._candle_publisher is not None:
            await self._candle_publisher.close()

    async def _drain(self, budget_seconds: float = 5.0) -> None:
        """On a graceful stop, store what is already in the firehose (for a bounded time)."""
        deadline = time.monotonic() + budget_seconds
        while time.monotonic() < deadline and self.database_ok:
            try:
                reply = await self._redis.xreadgroup(
                    self._group, self._consumer, dict.fromkeys(self._streams, ">"),
                    count=self._settings.tick_buffer_size,
                )  # fmt: skip
            except (RedisError, OSError):
                break
            got = stream_entries(reply)
            if not any(entries for _, entries in got):
                break
            for stream, entries in got:
                self._add(stream.decode(), entries)
            await self._flush()
        await self._flush()
        await self._ack_pending()

    def _due(self) -> bool:
        size = len(self._batch)
        if size == 0:
            return False
        if size >= self._settings.tick_buffer_size:
            return True
        return time.monotonic() - self._batch.started >= self._settings.flush_interval_seconds

    def _add(self, stream: str, entries: list[Entry]) -> None:
        if not entries:
            return
        batch = self._batch
        if not batch.ids:
            batch.started = time.monotonic()
        ids = batch.ids.setdefault(stream, [])
        for entry_id, fields in entries:
            ids.append(entry_id)
            raw = fields.get(TICK_FIELD) if fields else None
            if raw is None:
                continue  # trimmed away (XAUTOCLAIM of a deleted entry): ack only
            try:
                tick = decode_tick(raw)
            except msgspec.DecodeError as exc:
                if self.malformed == 0:
                    log.error(
                        "malformed firehose entry %s %s skipped: %s (sample %r)",
                        stream,
                        entry_id,
                        exc,
                        raw[:200],
                    )
                self.malformed += 1
                continue
            batch.rows.append(tick_row(tick, stream, entry_id.decode()))

    async def _apply_retention(self) -> None:
        """Drop expired day partitions, at start and then hourly (cheap when nothing is due)."""
        now = time.monotonic()
        if now - self._retention_checked < 3600:
            return
        self._retention_checked = now
        try:
            async with self._pool.acquire() as conn:
                dropped = await self._partitions.drop_expired(conn)
        except DATABASE_ERRORS as exc:
            log.warning("tick retention check failed (will retry): %s", exc)
            self._retention_checked = now - 3600 + 60
            return
        if dropped:
            log.info("dropped tick partitions past %d days: %s",
                     self._settings.tick_retention_days, ", ".join(dropped))  # fmt: skip

    async def _flush(self) -> None:
        await self._apply_retention()
        batch = self._batch
        if not batch.ids:
            return
        delay = 0.2
        candles: list[Candle] = []
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await self._partitions.ensure(conn, row_days(batch.rows))
                    if not batch.rows:
                        new = 0
                    elif self._settings.candles_enabled:
                        new, candles = await copy_ticks_with_candles(conn, batch.rows)
                    else:
                        new = await copy_ticks(conn, batch.rows)
                break
            except DATABASE_ERRORS as exc:
                if self.database_ok:
                    log.error(
                        "PostgreSQL write failed; keeping %d ticks unacked, retrying: %s",
                        len(batch),
                        exc,
                    )
                self.database_ok = False
                self.last_error = str(exc)
                self._partitions.forget()
                if self._stopping.is_set() and delay >= 3.2:
                    log.error(
                        "stopping with %d ticks unstored; they stay pending in Redis", len(batch)
                    )
                    self._batch = _Batch()
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        if not self.database_ok:
            log.warning("PostgreSQL is reachable again")
        self.database_ok = True
        self.stored += new
        self.duplicates += len(batch.rows) - new
        self.last_flush_at = time.time()
        for stream, ids in batch.ids.items():
            self._unacked.setdefault(stream, []).extend(ids)
        self._batch = _Batch()
        self.candles_updated += len(candles)
        try:
            await self._redis.hincrby(self._settings.stats_key, "stored", new)
        except (RedisError, OSError) as exc:
            await self._redis_failed(exc)
        if candles:
            await self._publish_candles(candles)

    async def _publish_candles(self, candles: list[Candle]) -> None:
        try:
            if self._candle_publisher is None:
                self._candle_publisher = CandlePublisher(self._settings)
            await self._candle_publisher.publish(candles)
        except (RedisError, OSError) as exc:
            await self._redis_failed(exc)

    async def _maintain_candles(self, force: bool = False) -> None:
        """Every ``CANDLE_ROLLUP_SECONDS`` (and on stop): roll the queued 1m candles up into the
        coarser intervals, then close the candles whose bucket has ended — in that order, so a
        candle is complete when it closes."""
        if not self._settings.candles_enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_close < self._settings.candle_rollup_seconds:
            return
        self._last_close = now
        try:
            async with self._pool.acquire() as conn:
                rolled = await rollup_candles(conn)
                await close_due_candles(conn, self._settings.candle_close_grace_seconds)
        except DATABASE_ERRORS as exc:
            log.debug("rolling up or closing candles failed (retried next round): %s", exc)
            return
        if rolled:
            self.candles_updated += len(rolled)
            await self._publish_candles(rolled)

    async def _ack_pending(self) -> None:
        if not self._unacked:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for stream, ids in self._unacked.items():
                if ids:
                    pipe.xack(stream, self._group, *ids)
            await pipe.execute()
            self._unacked.clear()
        except (RedisError, OSError) as exc:
            await self._redis_failed(exc)  # committed rows: a redelivery is a no-op

    async def _read_own_pending(self) -> None:
        """After a restart under the same name, our unacked entries come first."""
        while True:
            reply = await self._redis.xreadgroup(
                self._group, self._consumer, dict.fromkeys(self._streams, "0"),
                count=self._settings.tick_buffer_size,
            )  # fmt: skip
            got = 0
            for stream, entries in stream_entries(reply):
                # id "0" re-reads the whole pending list each time, so flush before reading on.
                self._add(stream.decode(), entries)
                got += len(entries)
            if got == 0:
                return
            await self._flush()
            await self._ack_pending()

    async def _claim_abandoned(self) -> None:
        now = time.monotonic()
        idle = self._settings.store_claim_idle_seconds
        if now - self._last_claim < min(idle, 30.0):
            return
        self._last_claim = now
        for stream in self._streams:
            start = "0-0"
            while True:
                claimed = await self._redis.xautoclaim(
                    stream, self._group, self._consumer, int(idle * 1000), start_id=start,
                    count=self._settings.tick_buffer_size,
                )  # fmt: skip
                next_id, entries = claimed[0], cast(list[Entry], claimed[1])
                if entries:
                    log.warning(
                        "claimed %d entries abandoned by a dead store worker on %s",
                        len(entries),
                        stream,
                    )
                    self._add(stream, entries)
                    await self._flush()
                if next_id in (b"0-0", "0-0"):
                    break
                start = next_id

    async def _retry_redis(self, action: object) -> None:
        assert callable(action)
        delay = 0.2
        while True:
            try:
                await action()
                self.redis_ok = True
                return
            except (RedisError, OSError) as exc:
                if self._stopping.is_set():
                    return
                await self._redis_failed(exc, delay)
                delay = min(delay * 2, 5.0)

    async def _redis_failed(self, exc: BaseException, delay: float = 1.0) -> None:
        if self.redis_ok:
            log.error("Redis unavailable to the store worker: %s", exc)
        self.redis_ok = False
        self.last_error = str(exc)
        await asyncio.sleep(delay)
