"""The consumer library against real Redis: plain and group reads, retries, claims, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from marketpulse.bus.publisher import TickPublisher
from marketpulse.client import MarketDataTick, RedisMarketDataConsumer, create_redis_consumer
from marketpulse.client.consumer import ConsumerError
from marketpulse.config import Settings
from marketpulse.model import DepthLevel, Tick
from tests.support.polling import until
from tests.support.valkey import DisposableValkey


def tick(symbol: str, ltp: float, n: int = 0) -> Tick:
    return Tick(source="sim", token=str(n), exchange=symbol.split(".")[1], mode="full",
                ltp=ltp, symbol=symbol, close=100.0, change=ltp - 100.0,
                change_pct=ltp - 100.0, volume=10 + n, ts_recv=1_700_000_000_000_000_000 + n,
                ts_exchange=1_700_000_000_000 + n,
                bids=[DepthLevel(ltp - 0.05, 5, 1)],
                asks=[DepthLevel(ltp + 0.05, 7, 2)])  # fmt: skip


async def publish(redis: aioredis.Redis, settings: Settings, ticks: list[Tick]) -> None:
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    await publisher.publish(ticks)
    publisher.stop()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[RedisMarketDataConsumer], None]]:
    tasks: list[tuple[RedisMarketDataConsumer, asyncio.Task[None]]] = []

    def start(consumer: RedisMarketDataConsumer) -> None:
        tasks.append((consumer, asyncio.create_task(consumer.run())))

    yield start
    for consumer, task in tasks:
        await consumer.disconnect()
        await asyncio.wait_for(task, 10)


def consumer_for(
    settings: Settings, url: str | None = None, **options: object
) -> RedisMarketDataConsumer:
    assert settings.redis_url
    return create_redis_consumer(url or settings.redis_url,
                                 stream_prefix=settings.symbol_stream_prefix, block_ms=100,
                                 **options)  # fmt: skip


async def test_handlers_get_new_ticks_of_their_symbols_with_trading_names(
    settings: Settings, redis: aioredis.Redis, running: Callable[[RedisMarketDataConsumer], None]
) -> None:
    await publish(redis, settings, [tick("TCS.NSE", 99.0)])  # before subscribing: not delivered
    consumer = consumer_for(settings)
    got: list[MarketDataTick] = []
    async_got: list[str] = []

    async def async_handler(t: MarketDataTick) -> None:
        async_got.append(t.symbol)

    consumer.add_message_handler(got.append)
    consumer.add_message_handler(async_handler)
    await consumer.connect()
    await consumer.subscribe_to_multiple_symbols(["NSE:TCS", "INFY.NS"])
    running(consumer)
    await publish(redis, settings, [tick("TCS.NSE", 101.5, 1), tick("SBIN.NSE", 5.0, 2),
                                    tick("INFY.NSE", 102.0, 3)])  # fmt: skip
    await until(lambda: len(got) == 2)
    first = got[0]
    assert (first.symbol, first.ltp, first.change, first.change_percent) == (
        "TCS.NSE",
        101.5,
        1.5,
        1.5,
    )
    assert (first.bid, first.ask, first.volume, first.close) == (101.45, 101.55, 11, 100.0)
    assert first.exchange_timestamp is not None
    assert first.exchange_timestamp.timestamp() == pytest.approx(1_700_000_000.001)
    assert [t.symbol for t in got] == ["TCS.NSE", "INFY.NSE"] == async_got


async def test_latest_tick_and_stream_info(settings: Settings, redis: aioredis.Redis) -> None:
    await publish(redis, settings, [tick("TCS.NSE", 1.0, 1), tick("TCS.NSE", 2.0, 2)])
    consumer = consumer_for(settings)
    await consumer.connect()
    latest = await consumer.get_latest_tick("TCS.NSE")
    assert latest is not None and latest.ltp == 2.0
    info = await consumer.get_stream_info("TCS.NSE")
    assert info["length"] == 2 and info["last_entry_id"] == latest.stream_id
    assert await consumer.get_latest_tick("NOPE.NSE") is None
    with pytest.raises(ConsumerError, match=r"no stream for NOPE\.NSE"):
        await consumer.get_stream_info("NOPE.NSE")
    await consumer.disconnect()


async def test_subscribe_to_all_finds_streams_created_later(
    settings: Settings, redis: aioredis.Redis, running: Callable[[RedisMarketDataConsumer], None]
) -> None:
    await publish(redis, settings, [tick("TCS.NSE", 1.0)])
    consumer = consumer_for(settings, discover_interval_seconds=0.1)
    got: list[str] = []
    consumer.add_message_handler(lambda t: got.append(t.symbol))
    await consumer.connect()
    await consumer.subscribe_to_all_symbols()
    assert consumer.symbols == ["TCS.NSE"]
    running(consumer)
    await publish(redis, settings, [tick("NEWCO.NSE", 7.0), tick("TCS.NSE", 2.0)])
    await until(lambda: sorted(got) == ["NEWCO.NSE", "TCS.NSE"])


async def test_group_members_share_the_work_and_acknowledge_what_they_handled(
    settings: Settings, redis: aioredis.Redis, running: Callable[[RedisMarketDataConsumer], None]
) -> None:
    seen: dict[str, list[float]] = {"a": [], "b": []}
    for name in ("a", "b"):
        consumer = consumer_for(settings, group="strategies", consumer_name=name, batch_size=5)
        consumer.add_message_handler(lambda t, n=name: seen[n].append(t.ltp))
        await consumer.connect()
        await consumer.subscribe_to_symbol("TCS.NSE")
        running(consumer)
    await publish(redis, settings, [tick("TCS.NSE", float(i), i) for i in range(200)])
    await until(lambda: len(seen["a"]) + len(seen["b"]) == 200)
    assert sorted(seen["a"] + seen["b"]) == [float(i) for i in range(200)]
    pending = await redis.xpending(settings.symbol_stream_key("TCS.NSE"), "strategies")
    assert pending["pending"] == 0


async def test_a_failing_handler_is_retried_and_a_poison_tick_is_eventually_dropped(
    settings: Settings, redis: aioredis.Redis, running: Callable[[RedisMarketDataConsumer], None]
) -> None:
    consumer = consumer_for(settings, group="g", consumer_name="c", retry_delay_seconds=0.2,
                            max_deliveries=3)  # fmt: skip
    attempts: dict[float, int] = {}
    handled: list[float] = []

    def flaky(t: MarketDataTick) -> None:
        attempts[t.ltp] = attempts.get(t.ltp, 0) + 1
        if t.ltp == 1.0 and attempts[t.ltp] < 2:
            raise RuntimeError("transient")
        if t.ltp == 13.0:
            raise ValueError("poison")
        handled.append(t.ltp)

    consumer.add_message_handler(flaky)
    await consumer.connect()
    await consumer.subscribe_to_symbol("TCS.NSE")
    running(consumer)
    await publish(
        redis, settings, [tick("TCS.NSE", 1.0), tick("TCS.NSE", 13.0), tick("TCS.NSE", 2.0)]
    )
    await until(lambda: attempts.get(13.0, 0) >= 3 and 1.0 in handled)
    await until(lambda: consumer.handler_errors >= 3)
    key = settings.symbol_stream_key("TCS.NSE")

    async def settled() -> bool:
        return (await redis.xpending(key, "g"))["pending"] == 0

    async with asyncio.timeout(10):
        while not await settled():
            await asyncio.sleep(0.1)
    assert sorted(handled) == [1.0, 2.0]
    assert attempts[13.0] == 3


async def test_ticks_left_by_a_dead_group_member_are_claimed(
    settings: Settings, redis: aioredis.Redis, running: Callable[[RedisMarketDataConsumer], None]
) -> None:
    key = settings.symbol_stream_key("TCS.NSE")
    await redis.xgroup_create(key, "g", id="0", mkstream=True)
    await publish(redis, settings, [tick("TCS.NSE", float(i), i) for i in range(5)])
    await redis.xreadgroup("g", "dead", {key: ">"}, count=5)  # read, never acknowledged
    survivor = consumer_for(settings, group="g", consumer_name="alive", claim_idle_seconds=0.3,
                            retry_delay_seconds=0.1)  # fmt: skip
    got: list[float] = []
    survivor.add_message_handler(lambda t: got.append(t.ltp))
    await survivor.connect()
    await survivor.subscribe_to_symbol("TCS.NSE")
    running(survivor)
    await until(lambda: sorted(got) == [0.0, 1.0, 2.0, 3.0, 4.0])


async def test_a_plain_consumer_survives_a_redis_restart_and_skips_nothing(
    valkey: DisposableValkey, settings: Settings, running: Callable[[RedisMarketDataConsumer], None]
) -> None:
    url = valkey.url
    settings = settings.model_copy(update={"redis_url": url})
    redis = aioredis.Redis.from_url(url)
    await publish(redis, settings, [tick("TCS.NSE", 0.0)])
    consumer = consumer_for(settings, url)
    got: list[float] = []
    consumer.add_message_handler(lambda t: got.append(t.ltp))
    await consumer.connect()
    await consumer.subscribe_to_symbol("TCS.NSE")
    running(consumer)
    await publish(redis, settings, [tick("TCS.NSE", 1.0, 1)])
    await until(lambda: got == [1.0])
    # Valkey here keeps no data on disk: after the restart the stream starts empty, and the
    # consumer must notice the new entries although their ids may be "older" than its position.
    valkey.kill()
    await asyncio.sleep(0.5)
    valkey.start()
    await redis.aclose()
    redis = aioredis.Redis.from_url(url)
    await until(lambda: consumer.reconnects >= 1, timeout=15)
    await publish(redis, settings, [tick("TCS.NSE", 2.0, 2), tick("TCS.NSE", 3.0, 3)])
    await until(lambda: got == [1.0, 2.0, 3.0], timeout=15)
    await redis.aclose()


async def test_connecting_to_nothing_is_a_clear_error() -> None:
    consumer = create_redis_consumer("redis://127.0.0.1:9/0")
    with pytest.raises(ConsumerError, match=r"cannot reach Redis at redis://127\.0\.0\.1:9/0"):
        await consumer.connect()
