"""The Fyers feed inside marketpulse: instrument sync, record/replay, the running service,
backfill history, quotes and the login command, all against the emulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from click.testing import Result

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.emulators.fyers import TEST_APP_ID, TEST_SECRET
from marketpulse.feeds.base import FeedAuthError
from marketpulse.feeds.fyers.feed import SPEC, FyersSetupError
from marketpulse.feeds.fyers.rest import FyersRestClient, quote_tick
from marketpulse.feeds.history import HistoryRequest
from marketpulse.feeds.registry import feed_spec
from marketpulse.store.database import create_pool
from marketpulse.store.instruments import resolve_instruments, sync_instruments
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.fyers.helpers import (
    RunningEmulator,
    access_token,
    fyers_emulator,
    save_session,
)
from tests.integration.kite.helpers import invoke_cli
from tests.support.service import running_service


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


async def cli(*args: str, env: dict[str, str | None]) -> Result:
    return await invoke_cli(list(args), env)


def _env(fy: RunningEmulator, home: Path) -> dict[str, str | None]:
    return {"MARKETPULSE_HOME": str(home), "FYERS_WS_URL": fy.ws_url,
            "FYERS_API_URL": fy.api_url, "FYERS_PUBLIC_URL": fy.api_url,
            "FYERS_APP_ID": None, "FYERS_ACCESS_TOKEN": None}  # fmt: skip


async def test_instruments_sync_loads_the_symbol_masters_and_a_resync_changes_nothing(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool
) -> None:
    async with fyers_emulator() as fy:
        env = {**_env(fy, tmp_path), "DATABASE_URL": database_url}
        first = await cli("instruments", "sync", "--provider", "fyers", env=env)
        again = await cli("instruments", "sync", "--provider", "fyers", env=env)
        count = len(fy.emulator.listing.listings)
    assert first.exit_code == 0, first.output
    assert f"fyers: {count} added, 0 changed, 0 unchanged, 0 removed, 0 collisions" in first.output
    assert f"fyers: 0 added, 0 changed, {count} unchanged, 0 removed" in again.output
    tracked = await resolve_instruments(pool, "fyers", ["SBIN.NSE", "SENSEX.BSE_INDEX"])
    assert {t.symbol: t.token for t in tracked} == {
        "SBIN.NSE": "NSE:SBIN-EQ", "SENSEX.BSE_INDEX": "BSE:SENSEX-INDEX"
    }  # fmt: skip


async def test_recorded_raw_frames_replay_to_the_same_ticks(tmp_path: Path) -> None:
    save_session(tmp_path)
    out, raw, replayed = tmp_path / "ticks.jsonl", tmp_path / "frames.raw", tmp_path / "again.jsonl"
    async with fyers_emulator(rate=600) as fy:
        env = _env(fy, tmp_path)
        recorded = await cli("record", "--feed", "fyers", "--tokens",
                             "NSE:SBIN-EQ,NSE:NIFTY50-INDEX", "--mode", "full", "--duration",
                             "1.5", "--out", str(out), "--raw", str(raw), env=env)  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    replay = await cli("replay", str(raw), "--feed", "fyers", "--out", str(replayed), env=env)
    assert replay.exit_code == 0, replay.output
    first = out.read_text().splitlines()
    second = replayed.read_text().splitlines()
    assert len(first) > 10
    assert second[: len(first)] == first and len(second) - len(first) <= 300
    assert {json.loads(line)["mode"] for line in first} == {"full", "quote"}  # index: quote


def _fyers_settings(settings: Settings, fy: RunningEmulator, subscribe: list[str]) -> Settings:
    return settings.model_copy(
        update={
            "feeds": ["fyers"], "subscribe": subscribe, "subscribe_mode": "full",
            "fyers_ws_url": fy.ws_url, "fyers_api_url": fy.api_url,
            "fyers_public_url": fy.api_url,
        }
    )  # fmt: skip


async def test_the_service_streams_fyers_ticks_to_redis_and_the_quotes_api(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    symbols = ["SBIN.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX"]
    save_session(settings.marketpulse_home)
    async with fyers_emulator(rate=300) as fy:
        configured = _fyers_settings(settings, fy, symbols)
        assert SPEC.instruments is not None and feed_spec("fyers") is SPEC
        records = await SPEC.instruments(configured, None)
        report = await sync_instruments(pool, "fyers", records)
        assert report.added == len(fy.emulator.listing.listings)
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            url = f"{endpoints.http}/api/quotes?symbols={','.join(symbols)}"
            # Until each symbol's first tick, the quote service answers over REST.
            body = await _eventually(
                lambda: http.get(url),
                lambda b: (
                    not b["missing"] and all(q["origin"] == "live" for q in b["quotes"].values())
                ),
            )
            snapshot = await redis.get(configured.snapshot_key("SENSEX.BSE_INDEX", "quote"))
            topics = fy.emulator.history[0].topics
    quotes = body["quotes"]
    assert {s: q["source"] for s, q in quotes.items()} == dict.fromkeys(symbols, "fyers")
    assert {s: q["exchange"] for s, q in quotes.items()} == {
        "SBIN.NSE": "NSE", "NIFTY50.NSE_INDEX": "NSE_INDEX", "SENSEX.BSE_INDEX": "BSE_INDEX"
    }  # fmt: skip
    assert quotes["SBIN.NSE"]["mode"] == "full" and quotes["SBIN.NSE"]["token"] == "NSE:SBIN-EQ"
    assert snapshot is not None and json.loads(snapshot)["symbol"] == "SENSEX.BSE_INDEX"
    assert len(topics) == 4  # sf + dp for SBIN, if for each index


async def _eventually(fetch: Any, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = (await fetch()).json()
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"last answer: {body}")
        await asyncio.sleep(0.2)


async def test_startup_without_subscribe_says_to_set_it(settings: Settings) -> None:
    async def resolver(provider: str, items: list[str]) -> list[TrackedSymbol]:
        raise AssertionError("nothing to resolve")

    adapter = SPEC.build(settings)
    with pytest.raises(FyersSetupError, match="set SUBSCRIBE to symbols such as"):
        await SPEC.startup(adapter, settings.model_copy(update={"subscribe": []}), resolver)


async def test_history_pages_come_from_the_rest_api_in_allowed_spans(settings: Settings) -> None:
    save_session(settings.marketpulse_home)
    async with fyers_emulator() as fy:
        configured = _fyers_settings(settings, fy, [])
        instrument = TrackedSymbol("SBIN.NSE", "fyers", "NSE:SBIN-EQ", "NSE", "full")
        end = datetime(2025, 12, 5, tzinfo=UTC)
        assert SPEC.history is not None
        minute = [page async for page in SPEC.history(configured, HistoryRequest(
            instrument, "1m", end - timedelta(days=2), end))]  # fmt: skip
        daily = [page async for page in SPEC.history(configured, HistoryRequest(
            instrument, "1d", end - timedelta(days=500), end))]  # fmt: skip
        requests = [r for r in fy.emulator.rest_requests if "/data/history" in r]
    candles = [c for page in minute for c in page]
    assert len(candles) == 2 * 375 and candles[0].status == "reconciled"
    assert candles[0].symbol == "SBIN.NSE" and candles[0].start.tzinfo is not None
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in candles)
    assert len(daily) == 2 and len(requests) == 3  # 500 days of daily bars: two requests
    assert all(c.start < end for page in daily for c in page)


async def test_rest_quotes_and_an_expired_rest_token(tmp_path: Path) -> None:
    async with fyers_emulator() as fy:
        save_session(tmp_path)
        settings = Settings(marketpulse_home=tmp_path, fyers_api_url=fy.api_url)
        async with FyersRestClient.from_settings(settings) as client:
            quotes = await client.quotes(["NSE:SBIN-EQ", "NSE:NOPE-EQ"])
        expired = FyersRestClient(fy.api_url, None)
        save_session(tmp_path, access_token(hsm_key="other"))
        async with FyersRestClient.from_settings(settings) as bad:
            with pytest.raises(FeedAuthError, match="marketpulse login fyers"):
                await bad.quotes(["NSE:SBIN-EQ"])
        await expired.aclose()
        last = fy.emulator.last["NSE:SBIN-EQ"]
    assert [q.s for q in quotes] == ["ok", "error"]
    tick = quote_tick(quotes[0], "NSE", 1)
    assert (tick.token, tick.ltp, tick.volume) == ("NSE:SBIN-EQ", last.ltp, last.volume)


async def test_login_exchanges_the_auth_code_and_saves_the_token_with_its_expiry(
    tmp_path: Path,
) -> None:
    async with fyers_emulator() as fy, httpx.AsyncClient() as http:
        login = await http.get(
            f"{fy.api_url}/api/v3/generate-authcode",
            params={
                "client_id": TEST_APP_ID,
                "redirect_uri": "https://x.test/cb",
                "response_type": "code",
                "state": "s",
            },
        )
        redirect = login.headers["location"]
        env = {**_env(fy, tmp_path), "FYERS_SECRET_KEY": TEST_SECRET}
        ok = await cli("login", "fyers", "--app-id", TEST_APP_ID, "--auth-code", redirect, env=env)
        reused = await cli("login", "fyers", "--app-id", TEST_APP_ID, "--auth-code", redirect,
                           env=env)  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "access token saved" in ok.output
    entry = CredentialStore.in_home(tmp_path).entry("fyers")
    assert entry.values["app_id"] == TEST_APP_ID and entry.expires_at is not None
    assert entry.expires_at > time.time() + 3600
    assert reused.exit_code == 1 and "Fyers refused the login" in reused.output
