"""The quote service against the Kite emulator's REST API, real Redis and PostgreSQL.

Time is a clock the test moves (``clock``), so freshness, staleness, background refresh and
eviction are exact; the live snapshots are written as ingest writes them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from marketpulse.config import Settings
from marketpulse.feeds.kite.feed import SPEC
from marketpulse.model import Tick, encode_tick
from marketpulse.quote_service import MarketDataService, Origin, QuoteErrorKind
from marketpulse.store.instruments import sync_instruments
from tests.integration.kite.helpers import RunningEmulator, kite_emulator, save_session


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def kite(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[RunningEmulator]:
    async with kite_emulator() as running:
        configured = settings.model_copy(update={"kite_api_url": running.api_url})
        assert SPEC.instruments is not None
        await sync_instruments(pool, "kite", await SPEC.instruments(configured, None))
        yield running


def configure(settings: Settings, kite: RunningEmulator, **update: object) -> Settings:
    return settings.model_copy(
        update={"kite_api_url": kite.api_url, "quote_providers": ["kite"], **update}
    )


def push(kite: RunningEmulator, key: str, ltp: float, close: float = 1500.0) -> None:
    kite.emulator.push([Tick(
        source="kite", token=str(kite.token(key)), exchange="NSE", mode="full", ltp=ltp,
        volume=1000, open=close, high=ltp, low=close, close=close,
    )])  # fmt: skip


def quote_calls(kite: RunningEmulator) -> int:
    return sum(1 for r in kite.emulator.rest_requests if r.startswith("GET /quote"))


async def write_snapshot(redis: aioredis.Redis, settings: Settings, tick: Tick) -> None:
    assert tick.symbol is not None
    await redis.set(settings.snapshot_key(tick.symbol, tick.mode), encode_tick(tick))


async def test_a_fresh_live_snapshot_is_answered_without_asking_the_provider(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, kite: RunningEmulator
) -> None:
    clock = Clock()
    configured = configure(settings, kite)
    save_session(configured.marketpulse_home)
    live = Tick(source="kite", token="408065", exchange="NSE", mode="full", ltp=1530.0,
                symbol="INFY.NSE", ts_recv=int((clock.now - 5) * 1e9))  # fmt: skip
    await write_snapshot(redis, configured, live)
    service = MarketDataService(redis, pool, configured, clock=clock)
    answer = await service.get_symbol_prices(["INFY.NSE"])
    quote = answer.quotes["INFY.NSE"]
    assert (quote.origin, quote.tick.ltp, quote.stale) == (Origin.LIVE, 1530.0, False)
    assert quote.age_seconds == pytest.approx(5.0, abs=0.01)
    assert quote_calls(kite) == 0 and not answer.errors


async def test_an_old_snapshot_is_replaced_by_the_providers_quote_which_is_then_cached(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, kite: RunningEmulator
) -> None:
    clock = Clock()
    configured = configure(settings, kite)
    save_session(configured.marketpulse_home)
    old = Tick(source="kite", token="408065", exchange="NSE", mode="full", ltp=1500.0,
               symbol="INFY.NSE", ts_recv=int((clock.now - 120) * 1e9))  # fmt: skip
    await write_snapshot(redis, configured, old)
    push(kite, "NSE:INFY", 1525.5)
    push(kite, "NSE:TCS", 3800.25, close=3790.0)
    service = MarketDataService(redis, pool, configured, clock=clock)

    answer = await service.get_symbol_prices(["INFY.NSE", "TCS.NSE"])
    infy, tcs = answer.quotes["INFY.NSE"], answer.quotes["TCS.NSE"]
    assert (infy.origin, infy.tick.ltp, infy.age_seconds) == (Origin.REST, 1525.5, 0.0)
    assert (tcs.tick.ltp, tcs.tick.close, tcs.tick.source) == (3800.25, 3790.0, "kite")
    assert tcs.tick.symbol == "TCS.NSE" and tcs.tick.exchange == "NSE"
    assert quote_calls(kite) == 1, "both symbols in one request"

    clock.now += 59
    again = await service.get_symbol_prices(["INFY.NSE", "TCS.NSE"])
    assert again.quotes["INFY.NSE"].origin is Origin.REST
    assert again.quotes["INFY.NSE"].age_seconds == pytest.approx(59)
    assert quote_calls(kite) == 1, "answered from the cache"

    clock.now += 2
    push(kite, "NSE:INFY", 1526.0)
    refreshed = await service.get_symbol_prices(["INFY.NSE"])
    assert refreshed.quotes["INFY.NSE"].tick.ltp == 1526.0 and quote_calls(kite) == 2


async def test_when_the_provider_fails_the_last_value_is_served_then_flagged_stale(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, kite: RunningEmulator
) -> None:
    clock = Clock()
    configured = configure(settings, kite, quote_breaker_failures=1,
                           quote_breaker_reset_seconds=30.0)  # fmt: skip
    save_session(configured.marketpulse_home)
    push(kite, "NSE:INFY", 1525.5)
    service = MarketDataService(redis, pool, configured, clock=clock)
    assert (await service.get_symbol_prices(["INFY.NSE"])).quotes["INFY.NSE"].tick.ltp == 1525.5

    kite.emulator.rest_faults.extend([503] * 5)  # every retry of the next fetch fails
    clock.now += 100
    answer = await service.get_symbol_prices(["INFY.NSE"])
    quote = answer.quotes["INFY.NSE"]
    assert (quote.tick.ltp, quote.age_seconds, quote.stale) == (1525.5, 100.0, False)
    assert service.status()["providers"]["kite"]["breaker"] == "open"
    calls = quote_calls(kite)

    clock.now += 201  # 301 s old: past MARKET_DATA_STALE_THRESHOLD; the breaker is half-open
    kite.emulator.rest_faults.extend([503] * 5)
    stale = (await service.get_symbol_prices(["INFY.NSE"])).quotes["INFY.NSE"]
    assert stale.stale and stale.age_seconds == 301.0 and stale.tick.ltp == 1525.5
    assert quote_calls(kite) == calls + 5, "one trial request (with its retries)"

    clock.now += 10  # the breaker is open again: the provider is not asked
    await service.get_symbol_prices(["INFY.NSE"])
    assert quote_calls(kite) == calls + 5

    clock.now += 21
    push(kite, "NSE:INFY", 1540.0)
    recovered = (await service.get_symbol_prices(["INFY.NSE"])).quotes["INFY.NSE"]
    assert (recovered.tick.ltp, recovered.stale) == (1540.0, False)
    assert service.status()["providers"]["kite"]["breaker"] == "closed"


async def test_unknown_symbols_missing_credentials_and_no_provider_are_typed_errors(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, kite: RunningEmulator
) -> None:
    configured = configure(settings, kite)
    service = MarketDataService(redis, pool, configured)
    answer = await service.get_symbol_prices(["INFY.NSE", "ZZZZ.NSE"])
    assert answer.missing == ["INFY.NSE", "ZZZZ.NSE"]
    assert answer.errors["INFY.NSE"].kind is QuoteErrorKind.AUTH
    assert "marketpulse login kite" in str(answer.errors["INFY.NSE"])
    assert answer.errors["ZZZZ.NSE"].kind is QuoteErrorKind.UNKNOWN_SYMBOL
    assert "instruments sync --provider kite" in str(answer.errors["ZZZZ.NSE"])

    nobody = MarketDataService(redis, pool, settings.model_copy(update={"feeds": ["sim"]}))
    assert nobody.providers == {}
    none = await nobody.get_symbol_prices(["INFY.NSE"])
    assert none.errors["INFY.NSE"].kind is QuoteErrorKind.NO_PROVIDER


async def test_background_refresh_refetches_requested_symbols_and_drops_unrequested_ones(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, kite: RunningEmulator
) -> None:
    clock = Clock()
    configured = configure(settings, kite)
    save_session(configured.marketpulse_home)
    for key, ltp in (("NSE:INFY", 1525.5), ("NSE:TCS", 3800.0)):
        push(kite, key, ltp)
    service = MarketDataService(redis, pool, configured, clock=clock)
    await service.get_symbol_prices(["INFY.NSE", "TCS.NSE"])
    assert quote_calls(kite) == 1

    clock.now += 61
    push(kite, "NSE:INFY", 1530.0)
    assert await service.refresh_once() == {"dropped": 0, "refreshed": 2, "failed": 0}
    assert quote_calls(kite) == 2
    cached = await service.get_symbol_prices(["INFY.NSE"])  # answered from the refresh
    assert cached.quotes["INFY.NSE"].tick.ltp == 1530.0 and quote_calls(kite) == 2

    clock.now += 250  # TCS last asked for 311 s ago, INFY 250 s ago
    assert (await service.refresh_once())["dropped"] == 1
    assert set(service.requested) == {"INFY.NSE"}
    assert service.status()["cached"] == 1
