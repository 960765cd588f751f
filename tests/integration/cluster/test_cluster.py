"""The service and the consumer library against a real local 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
import json
import random
import time

import asyncpg
import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from marketpulse.bus.connection import create_redis, is_cluster
from marketpulse.bus.control import ControlCommand, read_commands, send_command, wanted
from marketpulse.bus.market_data import MarketDataRepository
from marketpulse.bus.publisher import TickPublisher
from marketpulse.bus.resp import RespConnection, command
from marketpulse.bus.slots import key_slot
from marketpulse.client import MarketDataTick, create_redis_consumer
from marketpulse.config import Settings
from marketpulse.model import Mode, Tick
from marketpulse.store.database import asyncpg_dsn, create_pool
from marketpulse.store.ticks import prepare_connection
from marketpulse.store.worker import TickStoreWorker
from tests.integration import test_spill as spill
from tests.support.cluster import LocalCluster
from tests.support.polling import until
from tests.support.service import running_service
from tests.support.ticks import sample_ticks


async def publish(settings: Settings, ticks: list[Tick]) -> TickPublisher:
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    await publisher.publish(ticks)
    publisher.stop()
    await asyncio.wait_for(task, 30)
    assert publisher.published == len(ticks) and publisher.dropped == 0
    return publisher


def masters_holding(cluster: LocalCluster, keys: list[str]) -> set[int]:
    return {cluster.owner(key_slot(k)) for k in keys}


async def test_slots_agree_with_the_cluster(redis_cluster: LocalCluster) -> None:
    rng = random.Random(3)
    keys = ["foo", "{user1000}.following", "market:{RELIANCE.NSE}:full", "{}", "a{}b{c}"]
    keys += ["".join(rng.choices("abcxyz{}:.-_09", k=rng.randint(1, 20))) for _ in range(200)]
    with redis_cluster.client(0) as c:
        for key in keys:
            assert key_slot(key) == c.execute_command("CLUSTER", "KEYSLOT", key), key


async def test_create_redis_detects_the_cluster(redis_cluster: LocalCluster) -> None:
    client = create_redis(redis_cluster.url)  # cluster=None: asks INFO cluster
    try:
        assert is_cluster(client)
        await client.set("detect:{x}", b"1")
        assert await client.get("detect:{x}") == b"1"
    finally:
        await client.aclose()


async def test_publisher_writes_snapshots_streams_and_firehose_across_the_masters(
    cluster_settings: Settings, cluster_redis: aioredis.Redis, redis_cluster: LocalCluster
) -> None:
    ticks = sample_ticks(3000)
    await publish(cluster_settings, ticks)
    symbols = sorted({t.key for t in ticks})
    assert len(masters_holding(redis_cluster, [cluster_settings.symbol_stream_key(s)
                                               for s in symbols])) == 3  # fmt: skip

    firehose = sum([await cluster_redis.xlen(k) for k in cluster_settings.firehose_keys])
    assert firehose == len(ticks)
    per_symbol = {s: sum(1 for t in ticks if t.key == s) for s in symbols}
    for symbol in symbols:
        assert (
            await cluster_redis.xlen(cluster_settings.symbol_stream_key(symbol))
            == (per_symbol[symbol])
        )
    repo = MarketDataRepository(cluster_redis, cluster_settings)
    latest = await repo.latest_many(symbols)  # snapshots of every master in one call
    assert set(latest) == set(symbols)
    last = {t.key: t for t in ticks}
    assert all(latest[s].ltp == last[s].ltp for s in symbols)
    scanned = {symbol async for symbol, _ in repo.scan_symbols()}  # SCAN on every master
    assert scanned == set(symbols)
    assert len(await repo.history(symbols[0], "full")) > 0
    counters = await cluster_redis.hgetall(cluster_settings.stats_key)
    assert int(counters[b"published"]) == len(ticks)


async def test_store_worker_stores_every_tick_of_the_cluster_firehose(
    cluster_settings: Settings, cluster_redis: aioredis.Redis, database_url: str
) -> None:
    ticks = sample_ticks(2000, seed=5)
    await publish(cluster_settings, ticks)
    pool = await create_pool(database_url, init=prepare_connection)
    worker = TickStoreWorker(cluster_redis, pool, cluster_settings)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: worker.stored >= len(ticks))
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await pool.close()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        stored = await conn.fetchval("SELECT count(DISTINCT (stream, stream_id)) FROM ticks")
    finally:
        await conn.close()
    assert stored == len(ticks)
    for key in cluster_settings.firehose_keys:
        pending = await cluster_redis.xpending(key, cluster_settings.store_consumer_group)
        assert pending["pending"] == 0


async def test_control_commands_stay_one_transaction_in_the_cluster(
    cluster_settings: Settings, cluster_redis: aioredis.Redis
) -> None:
    command_ = ControlCommand("subscribe", ["TCS.NSE", "INFY.NSE"], feed="sim")
    await send_command(cluster_redis, cluster_settings, command_, ["sim", "kite"])
    assert await wanted(cluster_redis, cluster_settings, "kite") == {
        "TCS.NSE": "full", "INFY.NSE": "full",
    }  # fmt: skip
    _, commands = await read_commands(cluster_redis, cluster_settings, "0-0", block_ms=10)
    assert [c.id for c in commands] == [command_.id]


async def test_raw_resp_follows_moved_after_a_slot_changes_master(
    redis_cluster: LocalCluster, cluster_redis: aioredis.Redis
) -> None:
    conn = RespConnection(redis_cluster.url, cluster=True)
    try:
        assert await conn.execute(command(b"SET", b"moved:{warmup}", b"0"), 1) == 0  # map read
        key = b"moved:{%d}" % random.randrange(1 << 30)
        slot = key_slot(key)
        old = redis_cluster.owner(slot)
        redis_cluster.move_slot(slot, (old + 1) % 3)
        with redis_cluster.client(old) as c:
            moved_replies = c.info("stats")["total_error_replies"]
        errors = await conn.execute(command(b"SET", key, b"1") + command(b"INCR", key), 2)
        with redis_cluster.client(old) as c:  # the stale map sent it to the old master first
            assert c.info("stats")["total_error_replies"] > moved_replies
    finally:
        await conn.close()
    assert errors == 0
    assert await cluster_redis.get(key) == b"2"


async def test_whole_service_on_the_cluster_serves_quotes_and_websocket_ticks(
    cluster_settings: Settings,
) -> None:
    async with running_service(cluster_settings) as service:
        async with httpx.AsyncClient(base_url=service.http) as http:
            deadline = time.monotonic() + 20
            while True:
                resp = await http.get("/api/quotes", params={"symbols": "RELIANCE.NSE,INFY.NSE"})
                if len(resp.json().get("quotes", {})) == 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert resp.status_code == 200 and set(resp.json()["quotes"]) == {
                "RELIANCE.NSE", "INFY.NSE",
            }  # fmt: skip
            health = (await http.get("/health")).json()
            assert health["redis"]["ok"] is True
        async with connect(service.ws) as ws:
            await ws.send(json.dumps({"message_type": "subscribe", "channel": "RELIANCE.NSE"}))
            data: list[dict[str, object]] = []
            async with asyncio.timeout(15):
                while len(data) < 5:
                    message = json.loads(await ws.recv())
                    if message["message_type"] == "data":
                        data.append(message)
        assert {m["channel"] for m in data} == {"RELIANCE.NSE"}


async def test_consumer_reads_one_symbol_and_all_symbols_from_the_cluster(
    cluster_settings: Settings, redis_cluster: LocalCluster
) -> None:
    one = create_redis_consumer(
        redis_cluster.url, stream_prefix=cluster_settings.symbol_stream_prefix
    )
    every = create_redis_consumer(
        redis_cluster.url, stream_prefix=cluster_settings.symbol_stream_prefix,
        discover_interval_seconds=0.2,
    )  # fmt: skip
    got_one: list[MarketDataTick] = []
    got_every: list[MarketDataTick] = []
    one.add_message_handler(got_one.append)
    every.add_message_handler(got_every.append)
    await one.connect()
    await every.connect()
    first = sample_ticks(500, seed=9)
    await publish(cluster_settings, first)  # streams exist; the consumers start after these
    await one.subscribe_to_symbol("RELIANCE.NSE")
    await every.subscribe_to_all_symbols()
    tasks = [asyncio.create_task(one.run()), asyncio.create_task(every.run())]
    try:
        ticks = sample_ticks(1500, seed=10)
        await publish(cluster_settings, ticks)
        wanted_one = sum(1 for t in ticks if t.key == "RELIANCE.NSE")
        await until(lambda: len(got_one) >= wanted_one and len(got_every) >= len(ticks))
        await asyncio.sleep(0.3)
    finally:
        await one.disconnect()
        await every.disconnect()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert len(got_one) == wanted_one and {t.symbol for t in got_one} == {"RELIANCE.NSE"}
    assert len(got_every) == len(ticks)
    assert {t.symbol for t in got_every} == {t.key for t in ticks}
    assert "RELIANCE.NSE" in every.symbols


async def test_spill_replay_transactions_are_exact_on_the_cluster(
    cluster_settings: Settings, cluster_redis: aioredis.Redis
) -> None:
    """The replay's MULTI/EXEC (firehose entries of every shard, the counter and the replay
    marker) runs in one slot: nothing trimmed, nothing twice."""
    settings = cluster_settings.model_copy(update={"firehose_maxlen": 1000})
    await spill.create_group(cluster_redis, settings)
    ticks = sample_ticks(4200, 12, Mode.QUOTE)
    publisher = TickPublisher(settings)
    async with spill.running(publisher, settings):
        for start in range(0, len(ticks), 300):
            await publisher.publish(ticks[start : start + 300])
            await until(lambda n=start + 300: publisher.published + publisher.spilled == n)
        assert publisher.spilling and publisher.spilled > 0
    consumed: list[tuple[str, bytes]] = []
    publisher = TickPublisher(settings)
    async with spill.running(publisher, settings):
        async with asyncio.timeout(120):  # a hang guard, not a timing assertion
            while len(consumed) < len(ticks) or publisher.spilling:
                await spill.consume(cluster_redis, settings, consumed)
        assert publisher.spill_backlog == 0 and publisher.replayed > 0
    assert spill.by_key(consumed) == spill.published(ticks)
    marker = [k async for k in cluster_redis.scan_iter(match=f"{settings.bus_tag}:spill:*")]
    assert len(marker) == 1 and key_slot(marker[0]) == key_slot(settings.firehose_keys[0])


async def test_consumer_group_on_the_cluster_delivers_each_tick_once_across_members(
    cluster_settings: Settings, redis_cluster: LocalCluster
) -> None:
    symbols = ["RELIANCE.NSE", "INFY.NSE", "TCS.NSE", "SBIN.NSE", "HDFCBANK.NSE"]
    assert len({redis_cluster.owner(key_slot(cluster_settings.symbol_stream_key(s)))
                for s in symbols}) > 1  # fmt: skip
    members = [
        create_redis_consumer(redis_cluster.url, group="strategies", consumer_name=f"m{i}",
                              stream_prefix=cluster_settings.symbol_stream_prefix, start="0")
        for i in range(2)
    ]  # fmt: skip
    got: list[tuple[str, str]] = []  # stream ids are unique per stream only
    for member in members:
        member.add_message_handler(lambda tick: got.append((tick.symbol, tick.stream_id)))
        await member.connect()
        await member.subscribe_to_multiple_symbols(symbols)
    ticks = [t for t in sample_ticks(3000, seed=4) if t.key in symbols]
    await publish(cluster_settings, ticks)
    tasks = [asyncio.create_task(m.run()) for m in members]
    try:
        await until(lambda: len(got) >= len(ticks))
        await asyncio.sleep(0.3)
    finally:
        for member in members:
            await member.disconnect()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert len(got) == len(set(got)) == len(ticks)
