"""Ingest → Redis: snapshots and the firehose, written in pipelined batches.

Feeds hand batches to :meth:`TickPublisher.publish`, which only appends to an in-memory buffer,
so a slow or unreachable Redis never blocks a broker socket (brokers disconnect readers that fall
behind). A single writer task drains the buffer in pipelines. While Redis is unreachable the
buffer keeps up to ``INGEST_BUFFER_MAX_TICKS``; beyond that the oldest ticks are dropped and
counted — reported in ``/stats`` and ``/health``, never silent.

While the store falls behind (a PostgreSQL outage), Redis would trim firehose entries the store
has not read yet. Ingest's backlog monitor tells the publisher each shard's unstored backlog
(:meth:`TickPublisher.observe_backlog`); when a chunk would push a shard past
``FIREHOSE_SPILL_HIGH_RATIO`` of ``FIREHOSE_MAXLEN``, the firehose part of new ticks goes to the
spill file (:mod:`marketpulse.bus.spill`) instead — snapshots, history lists and per-symbol
streams still go to Redis. Once every shard is below ``FIREHOSE_SPILL_LOW_RATIO`` the file is
replayed into the firehose, while new ticks keep going to the file until it is drained, so
per-instrument order holds. Delivery into Redis stays at least once; into the spill file and
from it into the firehose exactly once (each replayed chunk is a MULTI/EXEC that also records
its end offset in Redis, checked before any resend).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketpulse.bus.connection import create_redis
from marketpulse.bus.firehose import KEY_FIELD, TICK_FIELD, shard_of
from marketpulse.bus.resp import RespConnection, bulk, command, command_prefix
from marketpulse.bus.spill import Record, SpillFile, SpillLockedError
from marketpulse.config import Settings
from marketpulse.model import Tick, encode_tick

log = logging.getLogger(__name__)

_CHUNK = 2000
_MARKER_TTL = b"604800"  # the replay marker outlives any sensible outage, then goes away


class SpillState(enum.Enum):
    """Where the firehose part of new ticks goes."""

    NORMAL = "normal"  # into Redis
    SPILLING = "spilling"  # into the spill file; the store is too far behind to replay
    REPLAYING = "replaying"  # into the spill file, which is being replayed into Redis


class _Kind(enum.Enum):
    LIVE = 1  # the chunk's firehose entries are in the payload
    SPILLED = 2  # its firehose part went to the spill file; the payload has the rest
    REPLAY = 3  # firehose entries replayed from the spill file, in MULTI/EXEC


@dataclass(slots=True)
class _Sent:
    """One packed chunk: resent byte for byte when the connection breaks (so the spill file
    and the counters never see it twice)."""

    payload: bytes
    replies: int
    kind: _Kind
    ticks: int
    shards: list[int]  # firehose entries per shard in the payload
    end: int = 0  # REPLAY: spill file offset after the chunk


class TickPublisher:
    """Buffers ticks and writes them to Redis; one instance per ingest process."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url, "REDIS_URL must be resolved before publishing"
        self._connection = RespConnection(settings.redis_url, cluster=settings.cluster_mode)
        self._settings = settings
        self._buffer: deque[Tick] = deque()
        self._resend: deque[_Sent] = deque()
        self._wakeup = asyncio.Event()
        # Everything of an XADD but the instrument key and the tick: fixed per shard.
        maxlen = str(settings.firehose_maxlen).encode()
        self._xadd_prefix = [
            command_prefix(10, b"XADD", key.encode(), b"MAXLEN", b"~", maxlen, b"*", KEY_FIELD)
            for key in settings.firehose_keys
        ]
        self._tick_field = bulk(TICK_FIELD)
        self._shards: dict[str, int] = {}
        # Per instrument: its shard and everything of its firehose XADD before the tick.
        self._firehose_heads: dict[str, tuple[int, bytes]] = {}
        # Per (instrument, mode): the snapshot SET before the tick, and the history list key.
        self._snapshot_heads: dict[tuple[str, str], tuple[bytes, bytes]] = {}
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
        # Store backlog per shard: the monitor's last reading (None = the shard has no store
        # group, nothing to protect) plus what was sent since (see observe_backlog).
        shards = settings.firehose_shards
        self._sent_entries = [0] * shards
        self._acked_entries = [0] * shards
        self._base: list[int | None] | None = None
        self._mark = [0] * shards
        self._observations = 0
        self._applied_observations = 0
        self._high = int(settings.firehose_spill_high_ratio * settings.firehose_maxlen)
        self._low = int(settings.firehose_spill_low_ratio * settings.firehose_maxlen)
        self._spill: SpillFile | None = None
        self._spill_tried = False
        self._spill_write_failed = False
        self._read_pos = 0  # spill offset up to which replay chunks have been packed
        self._replay_turn = True
        self._reconcile = False  # check the Redis replay marker before replaying
        self._control: aioredis.Redis | None = None
        self.spill_state = SpillState.NORMAL
        self.spilled = 0
        self.replayed = 0

    @property
    def backlog(self) -> int:
        """Ticks accepted but not yet written anywhere (Redis or the spill file)."""
        return len(self._buffer) + sum(s.ticks for s in self._resend if s.kind is _Kind.LIVE)

    @property
    def spill_backlog(self) -> int:
        """Ticks in the spill file not yet replayed into the firehose."""
        return self._spill.pending if self._spill is not None else 0

    @property
    def spilling(self) -> bool:
        return self.spill_state is not SpillState.NORMAL

    async def publish(self, batch: list[Tick]) -> None:
        """The feed supervisor's sink: accept a batch without waiting for Redis."""
        self.received += len(batch)
        self._buffer.extend(batch)
        self._enforce_bound()
        self._wakeup.set()

    def firehose_mark(self) -> list[int]:
        """Per shard, the firehose entries Redis has acknowledged so far: the monitor takes this
        before reading the backlog and hands it back to :meth:`observe_backlog`."""
        return list(self._acked_entries)

    def observe_backlog(self, backlog: list[int | None], mark: list[int]) -> None:
        """The store's backlog per shard (``None``: no store group there), read after
        :meth:`firehose_mark` returned ``mark``. Until the next reading a shard's backlog is
        taken as this value plus every entry sent since ``mark`` — an over-estimate, since the
        store keeps reading — so no chunk can overshoot the bound between two readings."""
        self._base = backlog
        self._mark = mark
        self._observations += 1
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
            if self._spill is not None:
                if not self._spill.is_empty:
                    log.warning("%d ticks stay in the spill file %s; the next start replays "
                                "them", self._spill.pending, self._spill.path)  # fmt: skip
                self._spill.close()  # kept on disk: the next start replays the rest
            if self._control is not None:
                await self._control.aclose()

    async def _drain_forever(self) -> None:
        # Up to two chunks in flight on the connection: while Redis applies one, the next is
        # built and sent, so client and server work at the same time.
        inflight: deque[_Sent] = deque()
        delay = 0.1
        while True:
            try:
                if len(inflight) < 2:
                    sent = await self._next()
                    if sent is not None:
                        inflight.append(sent)
                        self._count_sent(sent.shards, 1)
                        await self._connection.send(sent.payload)
                        continue
                if inflight:
                    sent = inflight[0]
                    await self._connection.receive(sent.replies)
                    inflight.popleft()
                    self._acknowledged(sent)
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
                # Whatever was in flight is sent again, byte for byte (at least once: a chunk
                # Redis applied before the connection broke can be written twice — except a
                # replayed chunk, whose marker in Redis says whether it was applied).
                for sent in inflight:
                    self._count_sent(sent.shards, -1)
                    self._reconcile |= sent.kind is _Kind.REPLAY
                self._resend.extendleft(reversed(inflight))
                inflight.clear()
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

    def _count_sent(self, shards: list[int], sign: int) -> None:
        sent = self._sent_entries
        for shard, count in enumerate(shards):
            if count:
                sent[shard] += sign * count

    def _acknowledged(self, sent: _Sent) -> None:
        acked = self._acked_entries
        for shard, count in enumerate(sent.shards):
            acked[shard] += count
        if sent.kind is _Kind.SPILLED:
            return
        self.published += sent.ticks
        if sent.kind is _Kind.REPLAY:
            self._replayed(sent)

    def _replayed(self, sent: _Sent) -> None:
        spill = self._spill
        assert spill is not None
        spill.commit(sent.end, sent.ticks)
        self.replayed += sent.ticks
        self._finish_replay()

    def _finish_replay(self) -> None:
        spill = self._spill
        if self.spill_state is not SpillState.REPLAYING or spill is None:
            return
        if spill.is_empty and self._read_pos >= spill.size:
            spill.remove()
            self._read_pos = 0
            self.spill_state = SpillState.NORMAL
            log.warning("spill file replayed into the firehose (%d ticks so far); back to "
                        "normal", self.replayed)  # fmt: skip

    # --- choosing the next chunk

    async def _next(self) -> _Sent | None:
        """The next chunk to send: a resend first, else per the spill state a chunk of new
        ticks and/or a replay chunk; ``None`` when there is nothing to send now."""
        if self._resend:
            if self._reconcile:
                await self._reconcile_replays()
                if not self._resend:
                    return None
            return self._resend.popleft()
        self._apply_observation()
        state = self.spill_state
        if state is SpillState.NORMAL:
            if not self._buffer:
                return None
            return self._pack(self._take())
        if state is SpillState.REPLAYING and not self._stopping:
            if self._reconcile:
                await self._reconcile_replays()
            if self._replay_turn or not self._buffer:
                replay = self._pack_replay()
                if replay is not None:
                    self._replay_turn = False
                    return replay
            self._finish_replay()
        if self._buffer:
            self._replay_turn = True
            return self._pack(self._take())
        return None

    def _take(self) -> list[Tick]:
        count = min(_CHUNK, len(self._buffer))
        return [self._buffer.popleft() for _ in range(count)]

    def _apply_observation(self) -> None:
        if self._observations == self._applied_observations:
            return
        self._applied_observations = self._observations
        if not self._spill_tried:
            self._open_spill()
        base = self._base
        low = self._low
        if self.spill_state is SpillState.SPILLING and base is not None:
            self.spill_state = (
                SpillState.REPLAYING
                if all(b is None or b < low for b in base)
                else SpillState.SPILLING
            )
            self._replay_turn = True

    def _open_spill(self) -> None:
        self._spill_tried = True
        directory = self._settings.spill_dir
        try:
            spill = SpillFile.open(directory, self._settings.redis_key_prefix)
        except SpillLockedError as exc:
            log.error("%s: running without spilling (ticks the store cannot take in time may "
                      "be trimmed from the firehose)", exc)  # fmt: skip
            return
        except OSError as exc:
            log.error("cannot open the spill file in %s (%s): running without spilling",
                      directory, exc)  # fmt: skip
            return
        self._spill = spill
        if not spill.is_empty:
            self.spill_state = SpillState.SPILLING
            self._read_pos = spill.committed
            self._reconcile = True
            log.warning("resuming spill file %s: %d ticks to replay into the firehose",
                        spill.path, spill.pending)  # fmt: skip

    def _estimates(self) -> list[int] | None:
        """Per shard, the store backlog assumed now (hugely negative for a shard without a
        store group: no bound there); ``None`` before the first reading."""
        base = self._base
        if base is None:
            return None
        sent, mark = self._sent_entries, self._mark
        unbounded = -(1 << 62)
        return [
            unbounded if b is None else b + sent[shard] - mark[shard]
            for shard, b in enumerate(base)
        ]

    def _would_overflow(self, shards: list[int]) -> bool:
        base = self._base
        if base is None or self._spill is None:
            return False
        high = self._high
        sent, mark = self._sent_entries, self._mark
        for shard, count in enumerate(shards):
            b = base[shard]
            if count and b is not None and b + sent[shard] - mark[shard] + count > high:
                return True
        return False

    async def _reconcile_replays(self) -> None:
        """Drop replay chunks that Redis applied before a connection broke (the marker their
        MULTI/EXEC wrote says how far replay got) and skip what an earlier run replayed."""
        spill = self._spill
        if spill is None:
            self._reconcile = False
            return
        if self._control is None:
            assert self._settings.redis_url
            self._control = create_redis(
                self._settings.redis_url, cluster=self._settings.cluster_mode
            )
        applied = 0
        if spill.file_id:
            raw = await self._control.get(self._settings.spill_marker_key(spill.file_id.hex()))
            if isinstance(raw, bytes) and raw.isdigit():
                applied = min(int(raw), spill.size)  # a machine crash may have cut the file
        self._reconcile = False
        if applied <= spill.committed:
            return
        kept: deque[_Sent] = deque()
        for sent in self._resend:
            if sent.kind is _Kind.REPLAY and sent.end <= applied:
                self._count_sent(sent.shards, 1)
                self._acknowledged(sent)  # applied once already: not again
            else:
                kept.append(sent)
        self._resend = kept
        if spill.file_id and spill.committed < applied:  # applied after an earlier commit
            skipped = spill.records_between(spill.committed, applied)
            spill.commit(applied, skipped)
            self.replayed += skipped
            self._read_pos = max(self._read_pos, applied)
            self._finish_replay()

    # --- packing

    def _symbol_stream_prefix(self, key: str) -> bytes:
        prefix = self._stream_prefixes.get(key)
        if prefix is None:
            settings = self._settings
            prefix = self._stream_prefixes[key] = command_prefix(
                8, b"XADD", settings.symbol_stream_key(key).encode(), b"MAXLEN", b"~",
                str(settings.symbol_stream_maxlen).encode(), b"*", TICK_FIELD,
            )  # fmt: skip
        return prefix

    def _pack(self, chunk: list[Tick]) -> _Sent:
        """Pack one chunk of new ticks — firehose and per-symbol stream entries for every tick,
        then per instrument and mode the latest snapshot and its history. Outside normal mode,
        or when the firehose part would push a shard past the high watermark, that part goes
        to the spill file instead."""
        settings = self._settings
        shard_cache = self._shards
        shards = settings.firehose_shards
        xadd_prefix = self._xadd_prefix
        tick_field = self._tick_field
        symbol_streams = settings.symbol_stream_maxlen > 0
        to_file = self.spill_state is not SpillState.NORMAL
        records: list[Record] = []
        fire: list[bytes] = []
        counts = [0] * shards
        parts: list[bytes] = []
        append = parts.append
        by_snapshot: dict[tuple[str, str], list[bytes]] = {}
        heads = self._firehose_heads
        for tick in chunk:
            data = encode_tick(tick)
            key = tick.key
            head = heads.get(key)
            if head is None:
                shard = shard_cache.get(key)
                if shard is None:
                    shard = shard_cache[key] = shard_of(key, shards)
                head = heads[key] = (
                    shard, xadd_prefix[shard] + bulk(key.encode()) + tick_field
                )  # fmt: skip
            data_bulk = bulk(data)
            if to_file:
                records.append((key.encode(), data))
            else:
                counts[head[0]] += 1
                fire += (head[1], data_bulk)
            if symbol_streams:
                append(self._symbol_stream_prefix(key))
                append(data_bulk)
            snapshots = by_snapshot.get((key, tick.mode))
            if snapshots is None:
                by_snapshot[(key, tick.mode)] = [data_bulk]
            else:
                snapshots.append(data_bulk)
        if not to_file and self._would_overflow(counts):
            # The store is too far behind: from this chunk on, the firehose part is parked.
            # The JSON is encoded again here, once per spill episode.
            assert self._spill is not None
            log.warning("store backlog near FIREHOSE_MAXLEN (%d): spilling new firehose "
                        "entries to %s", settings.firehose_maxlen, self._spill.path)  # fmt: skip
            self.spill_state = SpillState.SPILLING
            to_file = True
            records = [(tick.key.encode(), encode_tick(tick)) for tick in chunk]
            fire = []
            counts = [0] * shards
        replies = len(chunk) if symbol_streams else 0
        if not to_file:
            replies += len(chunk)
        ttl = str(settings.cache_ttl_seconds).encode()
        keep = settings.cache_snapshot_count
        now = time.monotonic()
        refresh_after = settings.cache_ttl_seconds / 4
        upkeep = self._history_upkeep
        snapshot_heads = self._snapshot_heads
        set_tail = bulk(b"EX") + bulk(ttl)
        lpush = bulk(b"LPUSH")
        for key_mode, datas in by_snapshot.items():
            cached = snapshot_heads.get(key_mode)
            if cached is None:
                key, mode = key_mode
                history_key = settings.history_key(key, mode).encode()
                cached = snapshot_heads[key_mode] = (
                    command_prefix(5, b"SET", settings.snapshot_key(key, mode).encode()),
                    history_key,
                )  # fmt: skip
            set_head, history = cached
            append(set_head + datas[-1] + set_tail)  # datas hold bulk strings already
            replies += 1
            if not keep:
                continue
            pushed_now = datas[-keep:]
            append(b"*%d\r\n%s%s%s" % (len(pushed_now) + 2, lpush, bulk(history),
                                        b"".join(pushed_now)))  # fmt: skip
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
        self._received_counted = received
        replies += 1
        if to_file:
            assert self._spill is not None
            try:
                self._spill.append(records)  # exactly once: a resend reuses the payload below
            except OSError as exc:
                # Disk full or gone: the firehose (maybe trimmed, maybe out of order behind
                # the file) is better than nowhere.
                if not self._spill_write_failed:
                    log.error("cannot write the spill file %s (%s): writing to the firehose",
                              self._spill.path, exc)  # fmt: skip
                self._spill_write_failed = True
                fire, counts = self._firehose_parts(records)
                replies += len(chunk)
            else:
                self._spill_write_failed = False
                self.spilled += len(records)
                return _Sent(b"".join(parts), replies, _Kind.SPILLED, len(chunk), counts)
        append(command(b"HINCRBY", stats, b"published", b"%d" % len(chunk)))
        fire += parts
        return _Sent(b"".join(fire), replies + 1, _Kind.LIVE, len(chunk), counts)

    def _firehose_parts(self, records: list[Record]) -> tuple[list[bytes], list[int]]:
        shards = self._settings.firehose_shards
        counts = [0] * shards
        parts: list[bytes] = []
        for raw_key, data in records:
            shard = shard_of(raw_key.decode(), shards)
            counts[shard] += 1
            parts += (self._xadd_prefix[shard], bulk(raw_key), self._tick_field, bulk(data))
        return parts, counts

    def _pack_replay(self) -> _Sent | None:
        """The next replay chunk: as many spilled entries as fit under the high watermark, in
        one MULTI/EXEC that also records how far replay got. ``None`` (and back to spilling)
        when not even one fits; ``None`` when the file has nothing unsent."""
        spill = self._spill
        assert spill is not None
        self._read_pos = max(self._read_pos, spill.committed)  # a new file starts past its header
        records, ends = spill.read(self._read_pos, _CHUNK)
        if not records:
            return None
        estimates = self._estimates()
        high = self._high
        shards = self._settings.firehose_shards
        shard_cache = self._shards
        xadd_prefix, tick_field = self._xadd_prefix, self._tick_field
        counts = [0] * shards
        parts = [command(b"MULTI")]
        for raw_key, data in records:
            key = raw_key.decode()
            shard = shard_cache.get(key)
            if shard is None:
                shard = shard_cache[key] = shard_of(key, shards)
            if estimates is not None and estimates[shard] + counts[shard] + 1 > high:
                break
            counts[shard] += 1
            parts += (xadd_prefix[shard], bulk(raw_key), tick_field, bulk(data))
        taken = sum(counts)
        if taken == 0:
            self.spill_state = SpillState.SPILLING
            return None
        end = ends[taken - 1]
        settings = self._settings
        marker = settings.spill_marker_key(spill.file_id.hex()).encode()
        parts.append(command(b"HINCRBY", settings.stats_key.encode(), b"published",
                             b"%d" % taken))  # fmt: skip
        parts.append(command(b"SET", marker, b"%d" % end, b"EX", _MARKER_TTL))
        parts.append(command(b"EXEC"))
        self._read_pos = end
        # MULTI, one QUEUED per command, then EXEC's array.
        return _Sent(b"".join(parts), taken + 4, _Kind.REPLAY, taken, counts, end)
