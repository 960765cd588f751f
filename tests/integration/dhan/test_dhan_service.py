"""The Dhan feed inside marketpulse: instrument sync, the running service, record/replay,
REST history and the official SDK, all against the emulator with real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.emulators.dhan import TEST_ACCESS_TOKEN, TEST_CLIENT_ID
from marketpulse.feeds.dhan.feed import SPEC
from marketpulse.feeds.history import HistoryRequest
from marketpulse.feeds.registry import feed_spec
from marketpulse.store.database import create_pool
from marketpulse.store.instruments import resolve_instruments, sync_instruments
from tests.integration.dhan.helpers import RunningEmulator, dhan_emulator
from tests.integration.kite.helpers import invoke_cli
from tests.integration.kite.test_kite_service import _eventually
from tests.support.service import running_service


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


def _save(home: Path) -> None:
    CredentialStore.in_home(home).save(
        "dhan", {"client_id": TEST_CLIENT_ID, "access_token": TEST_ACCESS_TOKEN}, None
    )


def _configured(settings: Settings, dhan: RunningEmulator, subscribe: list[str]) -> Settings:
    return settings.model_copy(
        update={
            "feeds": ["dhan"], "subscribe": subscribe, "subscribe_mode": "full",
            "dhan_ws_url": dhan.ws_url, "dhan_depth_ws_url": dhan.depth_url,
            "dhan_api_url": dhan.api_url, "dhan_scrip_master_url": dhan.master_url,
        }
    )  # fmt: skip


async def test_instruments_sync_keys_ids_by_segment_and_a_resync_changes_nothing(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool
) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": database_url, "MARKETPULSE_HOME": str(tmp_path)}
    async with dhan_emulator() as dhan:
        env["DHAN_SCRIP_MASTER_URL"] = dhan.master_url
        first = await invoke_cli(["instruments", "sync", "--provider", "dhan"], env)
        again = await invoke_cli(["instruments", "sync", "--provider", "dhan"], env)
        count = len(dhan.emulator.listings)
        want = {s: dhan.key(s) for s in ("INFY.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX")}
    assert first.exit_code == 0, first.output
    assert f"dhan: {count} added, 0 changed, 0 unchanged, 0 removed, 0 collisions" in first.output
    assert f"dhan: 0 added, 0 changed, {count} unchanged, 0 removed" in again.output
    tracked = await resolve_instruments(pool, "dhan", [*want, "NSE_EQ|1000", "IDX_I|1000"])
    assert {t.symbol: t.token for t in tracked[:3]} == want
    # the same security id in two segments is two instruments
    assert tracked[3].symbol != tracked[4].symbol


async def test_the_service_streams_dhan_ticks_to_the_quotes_api(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    symbols = ["INFY.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX"]
    _save(settings.marketpulse_home)
    async with dhan_emulator(rate=200) as dhan:
        configured = _configured(settings, dhan, symbols)
        assert SPEC.instruments is not None and feed_spec("dhan") is SPEC
        await sync_instruments(pool, "dhan", await SPEC.instruments(configured, None))
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            url = f"{endpoints.http}/api/quotes?symbols={','.join(symbols)}"
            # Until each symbol's first tick, the quote service answers over REST.
            body = await _eventually(
                lambda: http.get(url),
                lambda b: (
                    not b["missing"] and all(q["origin"] == "live" for q in b["quotes"].values())
                ),
            )
    quotes = body["quotes"]
    assert {s: q["source"] for s, q in quotes.items()} == dict.fromkeys(symbols, "dhan")
    assert quotes["SENSEX.BSE_INDEX"]["exchange"] == "BSE_INDEX"
    assert quotes["INFY.NSE"]["mode"] == "full" and len(quotes["INFY.NSE"]["bids"]) == 5
    assert quotes["INFY.NSE"]["token"] == dhan.key("INFY.NSE")


async def test_recorded_raw_frames_replay_to_the_same_ticks(tmp_path: Path) -> None:
    _save(tmp_path)
    out, raw, again = tmp_path / "t.jsonl", tmp_path / "f.raw", tmp_path / "a.jsonl"
    async with dhan_emulator(rate=600) as dhan:
        env: dict[str, str | None] = {
            "MARKETPULSE_HOME": str(tmp_path), "DHAN_WS_URL": dhan.ws_url,
            "DHAN_CLIENT_ID": None, "DHAN_ACCESS_TOKEN": None,
        }  # fmt: skip
        tokens = f"{dhan.key('INFY.NSE')},{dhan.key('NIFTY50.NSE_INDEX')}"
        recorded = await invoke_cli(["record", "--feed", "dhan", "--tokens", tokens, "--mode",
                                     "quote", "--duration", "1.5", "--out", str(out), "--raw",
                                     str(raw)], env)  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    replay = await invoke_cli(["replay", str(raw), "--feed", "dhan", "--out", str(again)], env)
    assert replay.exit_code == 0, replay.output
    first, second = out.read_text().splitlines(), again.read_text().splitlines()
    assert len(first) > 10 and second[: len(first)] == first
    assert json.loads(first[-1])["close"]  # prev close stamped, live and replayed


async def test_history_yields_daily_and_intraday_candles(settings: Settings) -> None:
    _save(settings.marketpulse_home)
    async with dhan_emulator() as dhan:
        configured = _configured(settings, dhan, [])
        from marketpulse.subscriptions import TrackedSymbol

        item = TrackedSymbol("INFY.NSE", "dhan", dhan.key("INFY.NSE"), "NSE", "full")
        end = datetime(2025, 1, 17, 10, 0, tzinfo=UTC)
        assert SPEC.history is not None
        daily = [c async for page in SPEC.history(configured, HistoryRequest(
            item, "1d", end - timedelta(days=7), end)) for c in page]  # fmt: skip
        minutes = [c async for page in SPEC.history(configured, HistoryRequest(
            item, "5m", end - timedelta(hours=2), end)) for c in page]  # fmt: skip
    assert len(daily) == 5 and all(c.status == "reconciled" for c in daily)
    assert minutes and all(c.start < end for c in minutes)
    assert minutes[1].start - minutes[0].start == timedelta(minutes=5)


SDK_SCRIPT = """
import sys
from dhanhq import DhanContext, MarketFeed
MarketFeed.market_feed_wss = "ws://127.0.0.1:" + sys.argv[1]
feed = MarketFeed(DhanContext(sys.argv[2], sys.argv[3]),
                  [(MarketFeed.NSE, sys.argv[4], MarketFeed.Full)], version="v2")
seen = []
feed.run_forever()
while len(seen) < 3:
    data = feed.get_data()
    if data:
        seen.append(data)
        print(data, flush=True)
feed.close_connection()
"""


async def test_the_official_sdk_decodes_our_emulator() -> None:
    pytest.importorskip("dhanhq")
    async with dhan_emulator(rate=100) as dhan:
        ident = dhan.key("INFY.NSE").split("|")[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SDK_SCRIPT, str(dhan.port), TEST_CLIENT_ID, TEST_ACCESS_TOKEN,
            ident, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        request = dhan.emulator.history[0].requests[0]
    assert process.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    assert "'type': 'Previous Close'" in text and "'type': 'Full Data'" in text
    assert f"'security_id': {ident}" in text
    assert (request.code, request.instruments) == (21, [("NSE_EQ", ident)])
