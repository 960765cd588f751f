"""Ingest → Redis → store → PostgreSQL on real servers: every published tick stored once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from marketpulse.bus.publisher import TickPublisher
from marketpulse.config import Settings
from marketpulse.ingest import IngestService
from marketpulse.model import Tick
from marketpulse.store.database import asyncpg_dsn, create_pool
from marketpulse.store.ticks import prepare_connection
from marketpulse.store.worker import TickStoreWorker
from tests.support.polling import until as wait_until
from tests.support.ticks import sample_ticks


async def stream_ids(redis: aioredis.Redis, settings: Settings) -> set[tuple[str, str]]:
    ids = set()
    for key in settings.firehose_keys:
        for entry_id, _ in await redis.xrange(key):
            ids.add((key, entry_id.decode()))
    return ids


async def stored_ids(database_url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT stream, stream_id FROM ticks")
    finally:
        await conn.close()
    return [(r["stream"], r["stream_id"]) for r in rows]


async def publish(redis: aioredis.Redis, settings: Settings, ticks: list[Tick]) -> None:
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    await publisher.publish(ticks)
    publisher.stop()
    await asyncio.wait_for(task, 30)
    assert publisher.published == len(ticks)


async def run_worker(
    redis: aioredis.Redis, settings: Settings
) -> tuple[TickStoreWorker, asyncio.Task[None], asyncpg.Pool]:
    assert settings.database_url
    pool = await create_pool(settings.database_url, init=prepare_connection)
    worker = TickStoreWorker(redis, pool, settings)
    return worker, asyncio.create_task(worker.run()), pool


async def test_every_tick_the_simulator_publishes_is_stored_exactly_once(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    settings = settings.model_copy(update={"sim_ticks_per_second": 3000})
    ingest = IngestService(redis, settings)
    worker, store_task, pool = await run_worker(redis, settings)
    ingest_task = asyncio.create_task(ingest.run())
    await wait_until(lambda: ingest.publisher.published > 3000)
    ingest_task.cancel()  # stops the feed, flushes the publisher
    await asyncio.wait_for(asyncio.gather(ingest_task, return_exceptions=True), 60)
    published = ingest.publisher.published
    assert published == ingest.publisher.received
    await wait_until(lambda: worker.stored >= published)
    worker.stop()
    await asyncio.wait_for(store_task, 30)
    await pool.close()

    rows = await stored_ids(database_url)
    assert len(rows) == published
    assert set(rows) == await stream_ids(redis, settings)
    counters = await redis.hgetall(settings.stats_key)
    assert int(counters[b"published"]) == published
    assert int(counters[b"stored"]) == published


async def test_worker_killed_mid_batch_and_restarted_under_its_name_loses_and_repeats_nothing(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    ticks = sample_ticks(1500)
    await publish(redis, settings, ticks)
    slow = settings.model_copy(update={
        "store_consumer_name": "worker-1", "tick_buffer_size": 100_000,
        "flush_interval_seconds": 60.0,
    })  # fmt: skip
    worker, task, pool = await run_worker(redis, slow)

    async def all_read() -> bool:
        pending = 0
        for key in settings.firehose_keys:
            try:
                pending += (await redis.xpending(key, settings.store_consumer_group))["pending"]
            except ResponseError:
                return False  # the worker has not created its group yet
        return pending == len(ticks)

    await wait_until(all_read)
    task.cancel()  # a crash: the batch was read but never committed nor acknowledged
    await asyncio.gather(task, return_exceptions=True)
    await pool.close()
    assert await stored_ids(database_url) == []

    restarted = slow.model_copy(update={"flush_interval_seconds": 0.2, "tick_buffer_size": 200})
    worker, task, pool = await run_worker(redis, restarted)
    await wait_until(lambda: worker.stored >= len(ticks))
    worker.stop()
    await asyncio.wait_for(task, 30)
    await pool.close()
    rows = await stored_ids(database_url)
    assert len(rows) == len(ticks) == len(set(rows))
    for key in settings.firehose_keys:
        assert (await redis.xpending(key, settings.store_consumer_group))["pending"] == 0


async def test_entries_of_a_dead_worker_are_claimed_by_another(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    ticks = sample_ticks(800, seed=11)
    await publish(redis, settings, ticks)
    dead = settings.model_copy(update={
        "store_consumer_name": "dead", "tick_buffer_size": 100_000, "flush_interval_seconds": 60.0,
    })  # fmt: skip
    worker, task, pool = await run_worker(redis, dead)
    await wait_until(lambda: len(worker._batch) == len(ticks))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pool.close()

    other = settings.model_copy(update={
        "store_consumer_name": "survivor", "store_claim_idle_seconds": 0.3,
    })  # fmt: skip
    await asyncio.sleep(0.4)
    worker, task, pool = await run_worker(redis, other)
    await wait_until(lambda: worker.stored >= len(ticks))
    worker.stop()
    await asyncio.wait_for(task, 30)
    await pool.close()
    rows = await stored_ids(database_url)
    assert len(rows) == len(set(rows)) == len(ticks)


async def test_redelivered_entries_after_commit_are_not_stored_twice(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    ticks = sample_ticks(600, seed=3)
    await publish(redis, settings, ticks)
    worker, task, pool = await run_worker(redis, settings)
    await wait_until(lambda: worker.stored >= len(ticks))
    worker.stop()
    await asyncio.wait_for(task, 30)
    # As if every commit had been followed by a crash before XACK: deliver everything again.
    for key in settings.firehose_keys:
        await redis.xgroup_setid(key, settings.store_consumer_group, "0")
    worker2 = TickStoreWorker(redis, pool, settings)
    task = asyncio.create_task(worker2.run())
    await wait_until(lambda: worker2.duplicates >= len(ticks))
    worker2.stop()
    await asyncio.wait_for(task, 30)
    await pool.close()
    assert worker2.stored == 0
    assert len(await stored_ids(database_url)) == len(ticks)


async def test_stored_rows_carry_the_tick_values_and_partitions_exist(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    ticks = sample_ticks(50, seed=5)
    await publish(redis, settings, ticks)
    worker, task, pool = await run_worker(redis, settings)
    await wait_until(lambda: worker.stored >= len(ticks))
    worker.stop()
    await asyncio.wait_for(task, 30)
    rows = await pool.fetch("SELECT * FROM ticks ORDER BY ts_recv, stream_id")
    parts = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ticks'"
    )
    await pool.close()
    assert len(parts) >= settings.partition_days_ahead + 1
    by_key = {(t.key, t.ts_recv, t.ltp) for t in ticks}
    assert {(r["symbol"], r["ts_recv"], r["ltp"]) for r in rows} == by_key
    full = next(r for r in rows if r["bid"] is not None)
    tick = next(
        t
        for t in ticks
        if t.key == full["symbol"] and t.ts_recv == full["ts_recv"] and t.ltp == full["ltp"]
    )
    assert tick.bids is not None
    assert (full["bid"], full["bid_qty"], full["volume"]) == (
        tick.bids[0].price,
        tick.bids[0].qty,
        tick.volume,
    )


@pytest.mark.parametrize("payload", [b"not json", b'{"source": "x"}'])
async def test_a_malformed_firehose_entry_is_counted_and_skipped_not_fatal(
    settings: Settings, redis: aioredis.Redis, database_url: str, payload: bytes
) -> None:
    await redis.xadd(settings.firehose_key(0), {b"k": b"X.NSE", b"t": payload})
    ticks = sample_ticks(20, seed=9)
    await publish(redis, settings, ticks)
    worker, task, pool = await run_worker(redis, settings)
    await wait_until(lambda: worker.stored >= len(ticks))
    worker.stop()
    await asyncio.wait_for(task, 30)
    await pool.close()
    assert worker.malformed == 1
    assert len(await stored_ids(database_url)) == len(ticks)


async def test_worker_recreates_a_vanished_consumer_group_and_keeps_storing(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    worker, task, pool = await run_worker(redis, settings)
    first = sample_ticks(100, seed=21)
    await publish(redis, settings, first)
    await wait_until(lambda: worker.stored >= 100)
    # As after a Redis restart without persistence: streams and group are gone.
    await redis.delete(*settings.firehose_keys)
    second = sample_ticks(150, seed=22)
    await asyncio.sleep(0.5)
    await publish(redis, settings, second)
    await wait_until(lambda: worker.stored >= 250)
    worker.stop()
    await asyncio.wait_for(task, 30)
    await pool.close()
    assert len(await stored_ids(database_url)) == 250


async def test_the_worker_rolls_coarser_candles_up_and_publishes_their_updates(
    settings: Settings, redis: aioredis.Redis, database_url: str
) -> None:
    """Batches write 1m candles only; within CANDLE_ROLLUP_SECONDS the worker builds the
    5m…1d candles from them, empties the roll-up queue and publishes the coarser updates."""
    settings = settings.model_copy(update={"candle_rollup_seconds": 0.2})
    worker, task, pool = await run_worker(redis, settings)
    ticks = sample_ticks(200, 7)
    await publish(redis, settings, ticks)

    async def rolled_up() -> bool:
        queued = await pool.fetchval("SELECT count(*) FROM candle_rollup_queue")
        intervals = await pool.fetchval("SELECT count(DISTINCT interval) FROM candles")
        return worker.stored >= len(ticks) and queued == 0 and intervals == 5

    await wait_until(rolled_up)
    worker.stop()
    await asyncio.wait_for(task, 30)
    per_interval = {
        r["interval"]: (r["ticks"], r["volume"])
        for r in await pool.fetch(
            "SELECT interval, sum(ticks) AS ticks, sum(volume) AS volume FROM candles "
            "GROUP BY interval"
        )
    }
    await pool.close()
    # Every interval saw every priced tick once. (Volumes differ by design: a session's first
    # bucket, like the day bar, counts the cumulative volume from the open.)
    assert {ticks for ticks, _ in per_interval.values()} == {len(ticks)}, per_interval
    assert per_interval["1d"][1] >= per_interval["1m"][1] > 0
    channels = {
        fields[b"k"].decode().split(":")[1]
        for _, fields in await redis.xrange(settings.candle_stream_key)
    }
    assert channels == {"1m", "5m", "15m", "1h", "1d"}
