"""Recent market state in Redis: snapshots with TTL, history lists, per-symbol streams."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from marketpulse.bus.market_data import MarketDataRepository
from marketpulse.bus.publisher import TickPublisher
from marketpulse.config import Settings
from marketpulse.model import DepthLevel, Tick


def tick(symbol: str, ltp: float, n: int, mode: str = "full") -> Tick:
    return Tick(source="sim", token=symbol.split(".")[0], exchange=symbol.split(".")[1],
                mode=mode, ltp=ltp, symbol=symbol, volume=1000 + n, ts_recv=1_000_000 + n,
                bids=[DepthLevel(ltp - 0.05, 10, 1)])  # fmt: skip


async def publish(redis: aioredis.Redis, settings: Settings, *batches: list[Tick]) -> None:
    publisher = TickPublisher(settings)
    task = asyncio.create_task(publisher.run())
    for batch in batches:
        await publisher.publish(batch)
        await asyncio.sleep(0.05)  # separate chunks, as ticks arrive over time
    publisher.stop()
    await asyncio.wait_for(task, 10)


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "cache_snapshot_count": 5, "symbol_stream_maxlen": 1000,
    })  # fmt: skip


async def test_snapshot_is_the_last_tick_with_the_configured_ttl(
    small: Settings, redis: aioredis.Redis
) -> None:
    await publish(redis, small, [tick("TCS.NSE", 100.0 + i, i) for i in range(3)])
    repo = MarketDataRepository(redis, small)
    latest = await repo.latest("TCS.NSE")
    assert latest is not None and latest.ltp == 102.0
    ttl = await redis.ttl(small.snapshot_key("TCS.NSE", "full"))
    assert 0 < ttl <= small.cache_ttl_seconds


async def test_history_keeps_the_most_recent_snapshots_newest_first(
    small: Settings, redis: aioredis.Redis
) -> None:
    batches = [[tick("INFY.NSE", 200.0 + i, i)] for i in range(12)]
    await publish(redis, small, *batches)
    repo = MarketDataRepository(redis, small)
    history = await repo.history("INFY.NSE", "full")
    assert [t.ltp for t in history] == [211.0, 210.0, 209.0, 208.0, 207.0]
    assert await redis.llen(small.history_key("INFY.NSE", "full")) <= 2 * 5
    assert 0 < await redis.ttl(small.history_key("INFY.NSE", "full")) <= small.cache_ttl_seconds


async def test_freshest_mode_wins_and_unknown_symbols_are_absent(
    small: Settings, redis: aioredis.Redis
) -> None:
    await publish(
        redis, small, [tick("SBIN.NSE", 500.0, 1, "quote"), tick("SBIN.NSE", 501.0, 2, "ltp")]
    )
    repo = MarketDataRepository(redis, small)
    got = await repo.latest_many(["SBIN.NSE", "NOPE.NSE"])
    assert set(got) == {"SBIN.NSE"} and got["SBIN.NSE"].ltp == 501.0
    quote = await repo.latest("SBIN.NSE", "quote")
    assert quote is not None and quote.ltp == 500.0


async def test_per_symbol_stream_gives_recent_ticks_by_time_range(
    small: Settings, redis: aioredis.Redis
) -> None:
    before = datetime.now(UTC)
    await publish(redis, small, [tick("TCS.NSE", 100.0 + i, i) for i in range(10)],
                  [tick("INFY.NSE", 1.0, 0)])  # fmt: skip
    after = datetime.now(UTC)
    repo = MarketDataRepository(redis, small)
    ticks = await repo.get_ticks("TCS.NSE", start=before, end=after)
    assert [t.ltp for t in ticks] == [100.0 + i for i in range(10)]
    assert [t.ltp for t in await repo.get_ticks("TCS.NSE", count=3)] == [100.0, 101.0, 102.0]
    assert await repo.get_ticks("TCS.NSE", end=int(before.timestamp() * 1000) - 1) == []
    with pytest.raises(ValueError, match="timezone"):
        await repo.get_ticks("TCS.NSE", start=datetime(2026, 1, 1))


async def test_scan_lists_live_snapshots_by_exchange_without_keys(
    small: Settings, redis: aioredis.Redis
) -> None:
    await publish(redis, small, [tick("TCS.NSE", 1.0, 1), tick("TCS.BSE", 1.0, 2),
                                 tick("NIFTY50.NSE_INDEX", 1.0, 3, "quote")])  # fmt: skip
    repo = MarketDataRepository(redis, small)
    everything = {x async for x in repo.scan_symbols()}
    assert everything == {("TCS.NSE", "full"), ("TCS.BSE", "full"),
                          ("NIFTY50.NSE_INDEX", "quote")}  # fmt: skip
    assert {x async for x in repo.scan_symbols(exchange="NSE")} == {("TCS.NSE", "full")}


async def test_delete_and_expire_remove_a_symbols_cached_state(
    small: Settings, redis: aioredis.Redis
) -> None:
    await publish(redis, small, [tick("TCS.NSE", 1.0, 1), tick("INFY.NSE", 2.0, 1)])
    repo = MarketDataRepository(redis, small)
    assert await repo.delete("TCS.NSE") == 3  # snapshot, history, stream
    assert await repo.latest("TCS.NSE") is None
    await repo.expire("INFY.NSE", 1)
    assert 0 < await redis.ttl(small.symbol_stream_key("INFY.NSE")) <= 1


async def test_streams_and_history_can_be_switched_off(
    settings: Settings, redis: aioredis.Redis
) -> None:
    off = settings.model_copy(update={
        "cache_snapshot_count": 0, "symbol_stream_maxlen": 0,
    })  # fmt: skip
    await publish(redis, off, [tick("TCS.NSE", 1.0, 1)])
    assert await redis.exists(off.history_key("TCS.NSE", "full")) == 0
    assert await redis.exists(off.symbol_stream_key("TCS.NSE")) == 0
    assert await MarketDataRepository(redis, off).latest("TCS.NSE") is not None
