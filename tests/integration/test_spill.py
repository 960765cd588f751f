"""Ingest spills firehose entries to a local file instead of letting Redis trim ticks the store
has not read, and replays them exactly once (issue #7). Real Redis, real files."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from marketpulse.bus.connection import create_redis
from marketpulse.bus.firehose import TICK_FIELD, stream_entries
from marketpulse.bus.publisher import SpillState, TickPublisher
from marketpulse.bus.spill import HEADER_SIZE, Record, SpillFile, decode_records
from marketpulse.config import Settings
from marketpulse.embedded import EmbeddedServices
from marketpulse.ingest import monitor_store_backlog, read_store_backlog
from marketpulse.model import Mode, Tick, encode_tick
from marketpulse.service import Role
from marketpulse.store.database import create_pool, upgrade
from marketpulse.store.ticks import prepare_connection
from marketpulse.store.worker import TickStoreWorker
from tests.integration.test_database_outage import private_postgres  # noqa: F401
from tests.support.polling import until
from tests.support.service import running_service
from tests.support.ticks import sample_ticks
from tests.support.valkey import DisposableValkey

GROUP = "store"


def by_key(items: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for key, data in items:
        out[key].append(data)
    return dict(out)


def published(ticks: list[Tick]) -> dict[str, list[bytes]]:
    return by_key([(t.key, encode_tick(t)) for t in ticks])


def as_records(ticks: list[Tick]) -> list[Record]:
    return [(t.key.encode(), encode_tick(t)) for t in ticks]


async def firehose(redis: aioredis.Redis, settings: Settings) -> list[tuple[str, bytes]]:
    """Every entry in every shard, in stream order."""
    out = []
    for key in settings.firehose_keys:
        for _, fields in await redis.xrange(key):
            out.append((fields[b"k"].decode(), fields[TICK_FIELD]))
    return out


def spill_contents(settings: Settings) -> list[tuple[str, bytes]]:
    """What the spill file holds past its saved replay offset (the file is not locked here)."""
    spill = SpillFile(settings.spill_dir, settings.redis_key_prefix)
    if not spill.path.exists():
        return []
    data = spill.path.read_bytes()
    offset = HEADER_SIZE
    if spill.offset_path.exists():
        offset = int(spill.offset_path.read_text().split()[1])
    records, _ = decode_records(data, 1 << 30, offset)
    return [(k.decode(), d) for k, d in records]


async def create_group(redis: aioredis.Redis, settings: Settings) -> None:
    for key in settings.firehose_keys:
        await redis.xgroup_create(key, GROUP, id="0", mkstream=True)


@contextlib.asynccontextmanager
async def running(publisher: TickPublisher, settings: Settings) -> AsyncIterator[None]:
    """The publisher with ingest's backlog monitor on its own client, as ingest runs it (one
    reading before the first tick)."""
    assert settings.redis_url
    client = create_redis(settings.redis_url)
    mark = publisher.firehose_mark()
    publisher.observe_backlog(await read_store_backlog(client, settings), mark)
    writer = asyncio.create_task(publisher.run())
    monitor = asyncio.create_task(monitor_store_backlog(client, settings, publisher, 0.05))
    try:
        yield
    finally:
        monitor.cancel()
        publisher.stop()
        await asyncio.wait_for(writer, 30)
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await client.aclose()


async def consume(
    redis: aioredis.Redis, settings: Settings, out: list[tuple[str, bytes]], count: int = 300
) -> int:
    """Read and acknowledge one round of the store group, like a store that keeps up."""
    reply = await redis.xreadgroup(
        GROUP, "test", dict.fromkeys(settings.firehose_keys, ">"), count=count, block=20
    )
    got = 0
    for stream, entries in stream_entries(reply):
        for _, fields in entries:
            out.append((fields[b"k"].decode(), fields[TICK_FIELD]))
        if entries:
            await redis.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
            got += len(entries)
    return got


async def test_a_store_that_does_not_read_loses_nothing_to_trimming_and_replay_is_exact(
    settings: Settings, redis: aioredis.Redis
) -> None:
    settings = settings.model_copy(update={"firehose_maxlen": 1000})
    await create_group(redis, settings)
    ticks = sample_ticks(6000, 11, Mode.QUOTE)
    publisher = TickPublisher(settings)
    async with running(publisher, settings):
        for start in range(0, len(ticks), 300):
            await publisher.publish(ticks[start : start + 300])
            await until(lambda n=start + 300: publisher.published + publisher.spilled == n)
        assert publisher.spilling and publisher.spilled > 0
    # Stopped (the lock is free): every tick is either in a shard or in the spill file.
    unread = await firehose(redis, settings)
    parked = spill_contents(settings)
    assert by_key(unread + parked) == published(ticks)
    assert len(unread) + len(parked) == 6000 and len(parked) == publisher.spill_backlog > 0

    # A store now reads and acknowledges everything; a new publisher replays the file.
    consumed: list[tuple[str, bytes]] = []
    publisher = TickPublisher(settings)
    async with running(publisher, settings):
        async with asyncio.timeout(120):  # a hang guard, not a timing assertion
            while len(consumed) < 6000 or publisher.spilling:
                await consume(redis, settings, consumed)
        assert publisher.spill_backlog == 0 and publisher.replayed == len(parked)
    assert by_key(consumed) == published(ticks)  # each exactly once, per-instrument order
    assert not SpillFile(settings.spill_dir, settings.redis_key_prefix).path.exists()


async def test_a_store_that_keeps_up_makes_the_publisher_spill_and_replay_while_ticking(
    settings: Settings, redis: aioredis.Redis
) -> None:
    settings = settings.model_copy(update={"firehose_maxlen": 1000})
    await create_group(redis, settings)
    ticks = sample_ticks(8000, 12, Mode.QUOTE)
    publisher = TickPublisher(settings)
    consumed: list[tuple[str, bytes]] = []
    async with running(publisher, settings):
        await publisher.publish(ticks[:4000])  # a burst the store cannot have read
        await until(lambda: publisher.spilled > 0)
        for start in range(4000, 8000, 200):  # new ticks while the file is replayed
            await publisher.publish(ticks[start : start + 200])
            await consume(redis, settings, consumed, 100)
        async with asyncio.timeout(120):
            while len(consumed) < 8000 or publisher.spilling:
                await consume(redis, settings, consumed)
    assert publisher.replayed == publisher.spilled
    assert by_key(consumed) == published(ticks)


async def test_a_restarted_publisher_replays_only_what_the_saved_offset_has_not(
    settings: Settings, redis: aioredis.Redis
) -> None:
    ticks = sample_ticks(1000, 13, Mode.QUOTE)
    spill = SpillFile.open(settings.spill_dir, settings.redis_key_prefix)
    spill.append(as_records(ticks[:500]))
    spill.append(as_records(ticks[500:]))
    _, ends = spill.read(HEADER_SIZE, 400)
    spill.commit(ends[-1], 400)  # the previous run replayed the first 400
    spill.close()

    publisher = TickPublisher(settings)  # no store group: nothing to protect, replay at once
    async with running(publisher, settings):
        await until(lambda: not spill.path.exists())  # replayed and removed
        assert publisher.spill_state is SpillState.NORMAL
    assert publisher.replayed == 600 and publisher.spilled == 0
    assert by_key(await firehose(redis, settings)) == published(ticks[400:])
    assert not spill.path.exists() and not spill.offset_path.exists()


async def test_a_chunk_redis_applied_after_the_last_saved_offset_is_not_replayed_again(
    settings: Settings, redis: aioredis.Redis
) -> None:
    ticks = sample_ticks(1000, 14, Mode.QUOTE)
    spill = SpillFile.open(settings.spill_dir, settings.redis_key_prefix)
    spill.append(as_records(ticks))
    _, ends = spill.read(HEADER_SIZE, 1000)
    spill.commit(ends[299], 300)
    file_id = spill.file_id
    spill.close()
    # The previous run's chunk up to tick 700 reached Redis; it died before saving the offset.
    await redis.set(settings.spill_marker_key(file_id.hex()), ends[699])

    publisher = TickPublisher(settings)
    async with running(publisher, settings):
        await until(lambda: not spill.path.exists())  # replayed and removed
        assert publisher.spill_state is SpillState.NORMAL
    assert by_key(await firehose(redis, settings)) == published(ticks[700:])
    assert publisher.replayed == 700  # 400 skipped by the marker + 300 replayed


class CuttingProxy:
    """A TCP proxy to Redis that, once armed, lets the first MULTI/EXEC through, waits until
    Redis has applied it (its marker key changed), then cuts the connection before the client
    sees the reply — the case where a resend would write the chunk twice."""

    EXEC = b"*1\r\n$4\r\nEXEC\r\n"

    def __init__(self, upstream_port: int, applied: Callable[[], object]) -> None:
        self._upstream_port = upstream_port
        self._applied = applied
        self._server: asyncio.Server | None = None
        self.port = 0
        self.armed = True
        self.cuts = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        held = asyncio.Event()

        async def downstream() -> None:
            while data := await up_reader.read(1 << 16):
                if held.is_set():
                    return  # the EXEC reply (and anything after it) never reaches the client
                writer.write(data)
                await writer.drain()

        down = asyncio.create_task(downstream())
        tail = b""
        try:
            while data := await reader.read(1 << 16):
                cut = self.armed and self.EXEC in tail + data
                if cut:
                    self.armed = False
                    held.set()
                up_writer.write(data)
                await up_writer.drain()
                if cut:
                    await until(self._applied, 30)
                    self.cuts += 1
                    break
                tail = data[-16:]
        finally:
            down.cancel()
            writer.close()
            up_writer.close()


async def test_a_redis_failure_during_replay_writes_no_tick_twice(
    valkey: DisposableValkey, settings: Settings, tmp_path: Path
) -> None:
    direct = aioredis.Redis.from_url(valkey.url)
    ticks = sample_ticks(5000, 15, Mode.QUOTE)
    settings = settings.model_copy(update={"redis_url": valkey.url})
    spill = SpillFile.open(settings.spill_dir, settings.redis_key_prefix)
    spill.append(as_records(ticks))
    spill.close()

    marker: list[bytes | None] = [None]

    async def watch_marker() -> None:
        while True:
            marker[0] = await direct.get(settings.spill_marker_key(spill.file_id.hex()))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_marker())
    proxy = CuttingProxy(valkey.port, lambda: marker[0] is not None)
    await proxy.start()
    through_proxy = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"})
    publisher = TickPublisher(through_proxy)
    async with running(publisher, settings):
        await until(lambda: not spill.path.exists())  # replayed and removed
        assert publisher.spill_state is SpillState.NORMAL
    watcher.cancel()
    await proxy.close()
    assert proxy.cuts == 1  # the first replayed chunk was applied and its reply lost
    entries = await firehose(direct, settings)
    assert len(entries) == 5000
    assert by_key(entries) == published(ticks)
    await direct.aclose()


async def test_a_database_outage_spills_and_every_tick_is_stored_exactly_once(
    private_postgres: EmbeddedServices,  # noqa: F811
    settings: Settings,
    redis: aioredis.Redis,
) -> None:
    url = private_postgres.database_url
    assert url is not None
    await upgrade(url)
    settings = settings.model_copy(update={"database_url": url, "firehose_maxlen": 1000})
    pool = await create_pool(url, init=prepare_connection)
    worker = TickStoreWorker(redis, pool, settings)
    store = asyncio.create_task(worker.run())
    ticks = sample_ticks(6000, 16, Mode.QUOTE)
    publisher = TickPublisher(settings)
    await worker.ensure_groups()  # so the publisher's first reading sees the store group
    async with running(publisher, settings):
        await publisher.publish(ticks[:500])
        await until(lambda: worker.stored >= 500)
        await asyncio.to_thread(private_postgres.stop)
        for start in range(500, 6000, 250):
            await publisher.publish(ticks[start : start + 250])
            await until(lambda: publisher.backlog == 0)
        await until(lambda: not worker.database_ok)
        assert publisher.spilling and publisher.spilled > 0
        await asyncio.to_thread(private_postgres.start)
        await until(lambda: worker.stored >= 6000 and not publisher.spilling, 120)
    worker.stop()
    await asyncio.wait_for(store, 30)
    rows = await pool.fetch("SELECT stream, stream_id FROM ticks")
    await pool.close()
    assert len(rows) == len({(r["stream"], r["stream_id"]) for r in rows}) == 6000
    assert worker.duplicates == 0


async def test_the_service_reports_spilling_in_health_and_stats_until_the_file_is_replayed(
    settings: Settings, redis: aioredis.Redis
) -> None:
    settings = settings.model_copy(update={"firehose_maxlen": 1000, "sim_ticks_per_second": 1000})
    await create_group(redis, settings)  # a store that is not running: it reads nothing
    async with (
        running_service(settings, frozenset({Role.INGEST, Role.API})) as service,
        httpx.AsyncClient(base_url=service.http) as http,
    ):

        async def sim() -> dict[str, Any]:
            feeds: dict[str, Any] = (await http.get("/health")).json()["feeds"]
            return feeds.get("sim", {})

        spilling: dict[str, Any] = {}
        async with asyncio.timeout(60):
            while not spilling.get("spilling"):
                spilling = await sim()
                await asyncio.sleep(0.1)
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert spilling["spilled_ticks"] > 0
        stats = (await http.get("/stats")).json()["ticks"]
        assert stats["spilled"] > 0 and stats["spill_backlog"] > 0

        consumed: list[tuple[str, bytes]] = []  # the store comes back and keeps up
        view = spilling
        async with asyncio.timeout(120):
            while view.get("spilling", True):
                await consume(redis, settings, consumed, 1000)
                view = await sim()
            assert view["replayed_ticks"] > 0 and view["spill_backlog_ticks"] == 0
            while (await http.get("/health")).json()["status"] != "ok":
                await consume(redis, settings, consumed, 1000)


async def test_backlog_is_lag_plus_pending_and_the_stream_length_when_lag_is_unknown(
    settings: Settings, redis: aioredis.Redis
) -> None:
    first, second = settings.firehose_keys
    await redis.xgroup_create(first, GROUP, id="0", mkstream=True)
    assert await read_store_backlog(redis, settings) == [0, None]  # no group: nothing to protect
    for n in range(1, 6):
        await redis.xadd(first, {b"k": b"X", b"t": b"{}"}, id=f"{n}-0")
    await redis.xdel(first, "3-0")  # a tombstone: Redis cannot tell the lag any more
    assert await read_store_backlog(redis, settings) == [4, None]  # XLEN, the safe fallback
    await redis.xreadgroup(GROUP, "test", {first: ">"}, count=2)
    await redis.xgroup_create(second, GROUP, id="0", mkstream=True)
    assert await read_store_backlog(redis, settings) == [4, 0]  # still XLEN (2 read, 2 not)
    await redis.xreadgroup(GROUP, "test", {first: ">"})
    await redis.xack(first, GROUP, "1-0", "2-0")
    assert await read_store_backlog(redis, settings) == [2, 0]  # all delivered, 2 pending
