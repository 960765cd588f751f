"""Angel One through the command line and the service, against the emulator.

``marketpulse login angelone``, ``instruments sync --provider angelone``, ``record``/``replay``
and the running service with ``FEEDS=angelone``. CLI commands run in a thread (typer's
``CliRunner``) while the emulator serves in the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner, Result

from marketpulse.cli import app
from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.emulators.angelone import (
    TEST_API_KEY,
    TEST_CLIENT_CODE,
    TEST_PIN,
    TEST_TOTP_SECRET,
)
from marketpulse.feeds.angelone.feed import SPEC, NothingToStreamError
from marketpulse.feeds.angelone.session import session_expiry
from marketpulse.store.database import create_pool
from marketpulse.store.instruments import sync_instruments
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.angelone.support import SESSION_ENV, Running, emulator
from tests.support.polling import until as wait_until
from tests.support.service import running_service


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


def credentials(home: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((home / "credentials.json").read_text())["angelone"]
    return data


async def test_login_saves_a_session_the_feed_can_use_and_refresh_renews_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    async with emulator() as running:
        env = {"MARKETPULSE_HOME": str(home), "ANGELONE_API_URL": running.api_url}
        args = ["login", "angelone", "--api-key", TEST_API_KEY, "--client-code",
                TEST_CLIENT_CODE, "--pin", TEST_PIN, "--totp-secret", TEST_TOTP_SECRET]  # fmt: skip
        result = await invoke(args, env)
        assert result.exit_code == 0, result.output
        assert f"logged in as {TEST_CLIENT_CODE}" in result.output
        saved = credentials(home)
        values = saved["values"]
        assert isinstance(values, dict)
        assert set(values) == {"api_key", "client_code", "jwt_token", "feed_token",
                               "refresh_token"}  # fmt: skip
        assert TEST_PIN not in values.values() and TEST_TOTP_SECRET not in json.dumps(saved)
        assert saved["expires_at"] == pytest.approx(session_expiry(time.time()), abs=5)
        assert stat.S_IMODE(os.stat(home / "credentials.json").st_mode) == 0o600

        store = CredentialStore.in_home(home, env={})
        adapter = SPEC.build(Settings(marketpulse_home=home, angelone_ws_url=running.ws_url))
        connection = await adapter.connect(await adapter.load_credentials())
        await connection.close()
        assert running.emulator.hub.history[0].session.jwt == values["jwt_token"]

        renewed = await invoke(["login", "angelone", "--refresh"], env)
        assert renewed.exit_code == 0, renewed.output
        assert "session renewed" in renewed.output
        again = store.get("angelone", {})
        assert again["jwt_token"] != values["jwt_token"]
        assert again["api_key"] == TEST_API_KEY  # kept from the saved session


async def test_a_refused_login_exits_with_the_apis_reason(tmp_path: Path) -> None:
    async with emulator() as running:
        env = {"MARKETPULSE_HOME": str(tmp_path), "ANGELONE_API_URL": running.api_url}
        args = ["login", "angelone", "--api-key", TEST_API_KEY, "--client-code",
                TEST_CLIENT_CODE, "--pin", "9999", "--totp", "123456"]  # fmt: skip
        result = await invoke(args, env)
    assert result.exit_code == 1
    assert "AB1007" in result.output and "check the client code and PIN" in result.output
    assert not (tmp_path / "credentials.json").exists()


async def test_instruments_sync_loads_the_master_and_a_resync_changes_nothing(
    database_url: str,
) -> None:
    async with emulator() as running:
        env = {"DATABASE_URL": database_url, "ANGELONE_SCRIP_MASTER_URL": running.master_url}
        first = await invoke(["instruments", "sync", "--provider", "angelone"], env)
        assert first.exit_code == 0, first.output
        count = len(running.emulator.universe)
        assert f"angelone: {count} added, 0 changed, 0 unchanged, 0 removed, 0 collisions" in (
            first.output)  # fmt: skip
        second = await invoke(["instruments", "sync", "--provider", "angelone"], env)
        assert second.exit_code == 0, second.output
        assert f"0 added, 0 changed, {count} unchanged, 0 removed" in second.output
        nifty = running.token("NIFTY50.NSE_INDEX")
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT i.symbol, i.instrument_type, p.exchange, p.broker_symbol FROM "
            "instrument_providers p JOIN instruments i ON i.id = p.instrument_id "
            "WHERE p.provider = 'angelone' AND p.token = $1", nifty,
        )  # fmt: skip
    finally:
        await conn.close()
    assert row is not None
    assert dict(row) == {"symbol": "NIFTY50.NSE_INDEX", "instrument_type": "INDEX",
                         "exchange": "NSE_INDEX", "broker_symbol": "Nifty 50"}  # fmt: skip


async def test_record_with_raw_frames_then_replay_gives_the_same_ticks(tmp_path: Path) -> None:
    async with emulator(60.0) as running:
        tokens = [running.token("RELIANCE.NSE"), running.token("INFY.NSE")]
        env = {**SESSION_ENV, "MARKETPULSE_HOME": str(tmp_path / "home"),
               "ANGELONE_WS_URL": running.ws_url}  # fmt: skip
        out, raw = tmp_path / "ticks.jsonl", tmp_path / "capture.bin"
        args = ["record", "--feed", "angelone", "--tokens", ",".join(tokens), "--mode", "quote",
                "--duration", "1.5", "--out", str(out), "--raw", str(raw)]  # fmt: skip
        recorded = await invoke(args, env)
    assert recorded.exit_code == 0, recorded.output
    replay_out = tmp_path / "replayed.jsonl"
    replayed = await invoke(["replay", str(raw), "--feed", "angelone", "--out", str(replay_out)],
                            {})  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    lines = out.read_text().splitlines()
    again = replay_out.read_text().splitlines()
    assert len(lines) > 10
    # The capture may hold a frame or two that arrived as the recording was being stopped.
    assert again[: len(lines)] == lines
    ticks = [json.loads(line) for line in lines]
    assert {t["token"] for t in ticks} == set(tokens)
    assert {(t["source"], t["mode"], t["exchange"]) for t in ticks} == {("angelone", "quote",
                                                                         "NSE")}  # fmt: skip


async def test_record_by_symbol_uses_the_instrument_master_for_segments_and_indices(
    tmp_path: Path, database_url: str
) -> None:
    async with emulator(60.0) as running:
        await sync_from(running, database_url)
        env = {**SESSION_ENV, "MARKETPULSE_HOME": str(tmp_path / "home"),
               "ANGELONE_WS_URL": running.ws_url, "DATABASE_URL": database_url}  # fmt: skip
        future = next(s.symbol for s in running.emulator.universe.specs
                      if s.instrument.exchange.value == "NFO")  # fmt: skip
        out = tmp_path / "ticks.jsonl"
        args = ["record", "--feed", "angelone", "--symbols", f"NIFTY50.NSE,{future}",
                "--mode", "ltp", "--duration", "1.5", "--out", str(out)]  # fmt: skip
        recorded = await invoke(args, env)
        assert recorded.exit_code == 0, recorded.output
        (client,) = running.emulator.hub.history
        groups = {g.exchange_type for r in client.requests for g in r.token_list}
    assert groups == {1, 2}  # the future was subscribed in NSE F&O, not NSE cash
    ticks = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(t["symbol"], t["exchange"]) for t in ticks} == {
        ("NIFTY50.NSE_INDEX", "NSE_INDEX"), (future, "NFO")}  # fmt: skip


async def sync_from(running: Running, database_url: str) -> None:
    settings = Settings(angelone_scrip_master_url=running.master_url)
    assert SPEC.instruments is not None
    records = await SPEC.instruments(settings, None)
    pool = await create_pool(database_url, max_size=1)
    try:
        await sync_instruments(pool, "angelone", records)
    finally:
        await pool.close()


@pytest.fixture
def angel_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"feeds": ["angelone"], "feed_stall_timeout_seconds": 60.0})


async def test_the_service_streams_angelone_ticks_into_redis_and_the_quotes_api(
    angel_settings: Settings, database_url: str, redis: aioredis.Redis
) -> None:
    async with emulator(40.0) as running:
        await sync_from(running, database_url)
        settings = angel_settings.model_copy(update={
            "subscribe": ["RELIANCE.NSE", "NIFTY50.NSE_INDEX"],
            "angelone_ws_url": running.ws_url,
            "angelone_api_url": running.api_url,
        })  # fmt: skip
        CredentialStore.in_home(settings.marketpulse_home, env={}).save(
            "angelone", {"api_key": TEST_API_KEY, "client_code": TEST_CLIENT_CODE,
                         "jwt_token": SESSION_ENV["ANGELONE_JWT_TOKEN"],
                         "feed_token": SESSION_ENV["ANGELONE_FEED_TOKEN"]},
            time.time() + 3600,
        )  # fmt: skip
        async with running_service(settings) as endpoints:
            keys = [settings.snapshot_key(s, "full") for s in ("RELIANCE.NSE", "NIFTY50.NSE_INDEX")]

            async def both_snapshots() -> bool:
                return all(await redis.mget(keys))

            await wait_until(both_snapshots)
            async with httpx.AsyncClient(base_url=endpoints.http) as http:
                quotes = (
                    await http.get("/api/quotes", params={"symbols": "RELIANCE.NSE,NIFTY50.NSE"})
                ).json()
                symbols = (await http.get("/symbols")).json()["symbols"]
    assert quotes["missing"] == []
    found = quotes["quotes"]
    assert set(found) == {"RELIANCE.NSE", "NIFTY50.NSE_INDEX"}
    assert {q["source"] for q in found.values()} == {"angelone"}
    assert found["NIFTY50.NSE_INDEX"]["exchange"] == "NSE_INDEX"
    assert found["RELIANCE.NSE"]["bids"]  # full mode: depth came through
    tracked = [msgspec.convert(s, TrackedSymbol) for s in symbols]
    assert {(t.symbol, t.token, t.exchange) for t in tracked} == {
        ("RELIANCE.NSE", running.token("RELIANCE.NSE"), "NSE"),
        ("NIFTY50.NSE_INDEX", running.token("NIFTY50.NSE_INDEX"), "NSE_INDEX"),
    }


async def test_an_empty_subscribe_list_is_a_clear_start_up_error(settings: Settings) -> None:
    adapter = SPEC.build(settings)

    async def resolver(provider: str, items: list[str]) -> list[TrackedSymbol]:
        raise AssertionError("not reached")

    with pytest.raises(NothingToStreamError, match="set SUBSCRIBE"):
        await SPEC.startup(adapter, settings.model_copy(update={"subscribe": []}), resolver)
