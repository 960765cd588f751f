"""Gap repair against the Kite emulator: a dropped connection is reported as an outage, and
a reported outage is recorded per symbol, measured, and refilled from the broker's history."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import asyncpg
import msgspec
import redis.asyncio as aioredis

from marketpulse.bus.gaps import OUTAGE_FIELD, OutageReport
from marketpulse.config import Settings
from marketpulse.feeds.base import FeedOutage, FeedSupervisor, ReconnectPolicy
from marketpulse.feeds.kite.feed import SPEC
from marketpulse.feeds.kite.rest import KiteRestClient
from marketpulse.model import Mode, Tick
from marketpulse.store.gaps import GapRepairer
from marketpulse.store.instruments import sync_instruments
from tests.integration.kite.helpers import kite_emulator, save_session, wait_for
from tests.integration.test_candles import DAY, at, store, tick


async def test_a_dropped_connection_is_reported_as_an_outage_of_its_instruments() -> None:
    outages: list[FeedOutage] = []

    async def sink(batch: list[Tick]) -> None:
        return None

    async with kite_emulator(rate=100, drop_every=0.6) as kite:
        token = str(kite.token("NSE:INFY"))
        supervisor = FeedSupervisor(
            kite.adapter(), sink, ReconnectPolicy(min_delay=0.05, max_delay=0.2),
            on_outage=outages.append,
        )  # fmt: skip
        await supervisor.subscribe([token], Mode.QUOTE)
        task = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: outages, timeout=15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    outage = outages[0]
    assert outage.feed == "kite" and outage.tokens == (token,)
    assert 0 < outage.end - outage.start < 10 and outage.reason


async def test_a_reported_outage_is_recorded_measured_and_refilled_from_history(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    save_session(settings.marketpulse_home)
    async with kite_emulator() as kite:
        configured = settings.model_copy(update={"kite_api_url": kite.api_url})
        assert SPEC.instruments is not None
        await sync_instruments(pool, "kite", await SPEC.instruments(configured, None))
        # Live ticks before and after a 09:20:10–09:23:40 outage.
        await store(pool, [tick(at("09:19:50"), 1500.0, 10_000, symbol="INFY.NSE"),
                           tick(at("09:23:45"), 1502.0, 13_500, symbol="INFY.NSE")])  # fmt: skip
        start, end = at("09:20:10"), at("09:23:40")
        report = OutageReport("kite", ["INFY.NSE"], start.timestamp(), end.timestamp(), "drop")
        await redis.xadd(configured.gaps_key, {OUTAGE_FIELD: msgspec.json.encode(report)})
        repairer = GapRepairer(redis, pool, configured)
        task = asyncio.create_task(repairer.run())
        try:
            async with asyncio.timeout(30):
                while not await pool.fetchval(
                    "SELECT count(*) FROM feed_gaps WHERE status <> 'open'"
                ):
                    await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with KiteRestClient.from_settings(configured) as client:
            broker = await client.historical(kite.token("NSE:INFY"), "minute", at("09:20:00"),
                                             at("09:23:59"))  # fmt: skip
    gap = await pool.fetchrow("SELECT * FROM feed_gaps")
    assert (gap["symbol"], gap["status"], gap["volume_jump"], gap["reason"]) == (
        "INFY.NSE", "repaired", 3500, "drop"
    )  # fmt: skip
    assert gap["gap_start"] == start and gap["gap_end"] == end and gap["candles"] == 4
    minutes = await pool.fetch(
        "SELECT start, open, close, status FROM candles WHERE symbol = 'INFY.NSE' "
        "AND interval = '1m' AND start >= $1 AND start < $2 ORDER BY start",
        at("09:20:00"), at("09:24:00"),
    )  # fmt: skip
    assert [(m["start"], m["open"], m["close"]) for m in minutes] == [
        (b.start.astimezone(UTC), b.open, b.close) for b in broker
    ]
    assert {m["status"] for m in minutes} == {"reconciled"}
    # The 5m bucket 09:20–09:25 was rebuilt from its minutes.
    five = await pool.fetchrow(
        "SELECT status FROM candles WHERE symbol = 'INFY.NSE' AND interval = '5m' AND start = $1",
        at("09:20:00"),
    )
    assert five["status"] == "reconciled"
    pending = await redis.xpending(configured.gaps_key, "store")
    assert pending["pending"] == 0


async def test_an_outage_of_a_feed_without_history_is_recorded_as_unrepairable(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    report = OutageReport("sim", ["RELIANCE.NSE"], at("10:00:00").timestamp(),
                          at("10:00:30").timestamp(), "heartbeat timeout")  # fmt: skip
    await GapRepairer(redis, pool, settings).handle(report)
    gap = await pool.fetchrow("SELECT status, detail, volume_jump FROM feed_gaps")
    assert gap["status"] == "unrepairable" and "no REST history" in gap["detail"]
    assert gap["volume_jump"] is None


async def test_only_the_in_session_parts_of_an_outage_are_recorded_and_refilled(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    save_session(settings.marketpulse_home)
    tuesday = DAY + timedelta(days=1)
    async with kite_emulator() as kite:
        configured = settings.model_copy(update={"kite_api_url": kite.api_url})
        assert SPEC.instruments is not None
        await sync_instruments(pool, "kite", await SPEC.instruments(configured, None))
        repairer = GapRepairer(redis, pool, configured)
        # Monday 15:20 to Tuesday 09:20 IST: ten minutes before the close, five after the open.
        overnight = OutageReport("kite", ["INFY.NSE"], at("15:20:00").timestamp(),
                                 at("09:20:00", tuesday).timestamp(), "drop")  # fmt: skip
        await repairer.handle(overnight)
        # Wednesday is made a holiday in the exchanges table: an outage then lost nothing.
        wednesday = DAY + timedelta(days=2)
        await pool.execute("UPDATE exchanges SET holidays = ARRAY[$1::date] WHERE code = 'NSE'",
                           wednesday.date())  # fmt: skip
        fresh = GapRepairer(redis, pool, configured)
        holiday = OutageReport("kite", ["INFY.NSE"], at("10:00:00", wednesday).timestamp(),
                               at("11:00:00", wednesday).timestamp(), "drop")  # fmt: skip
        await fresh.handle(holiday)
        night = OutageReport("kite", ["INFY.NSE"], at("20:00:00").timestamp(),
                             at("23:00:00").timestamp(), "drop")  # fmt: skip
        await fresh.handle(night)
    rows = await pool.fetch(
        "SELECT gap_start, gap_end, status, candles FROM feed_gaps ORDER BY gap_start"
    )
    assert [(r["gap_start"], r["gap_end"], r["status"], r["candles"]) for r in rows] == [
        (at("15:20:00"), at("15:30:00"), "repaired", 10),
        (at("09:15:00", tuesday), at("09:20:00", tuesday), "repaired", 5),
    ]
    assert fresh.off_session == 2 and fresh.recorded == 0
