"""The Kite feed inside marketpulse: instrument sync, record/replay and the running service,
all against the emulator, with real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from click.testing import Result

from marketpulse.config import Settings
from marketpulse.feeds.kite.feed import SPEC, KiteSetupError
from marketpulse.feeds.kite.wire import encode_frame
from marketpulse.feeds.registry import feed_spec
from marketpulse.model import Tick
from marketpulse.store.instruments import resolve_instruments, sync_instruments
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.kite.helpers import (
    RunningEmulator,
    invoke_cli,
    kite_emulator,
    save_session,
)
from tests.support.service import running_service


async def cli(*args: str, env: dict[str, str | None]) -> Result:
    return await invoke_cli(list(args), env)


async def test_instruments_sync_loads_the_master_and_a_resync_changes_nothing(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool
) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": database_url, "MARKETPULSE_HOME": str(tmp_path)}
    async with kite_emulator() as kite:
        env["KITE_API_URL"] = kite.api_url
        first = await cli("instruments", "sync", "--provider", "kite", env=env)
        again = await cli("instruments", "sync", "--provider", "kite", env=env)
        count = len(kite.emulator.listing.listings)
        want = {
            "INFY.NSE": kite.token("NSE:INFY"),
            "NIFTY50.NSE_INDEX": kite.token("NSE:NIFTY 50"),
            "SENSEX.BSE_INDEX": kite.token("BSE:SENSEX"),
        }
        future = next(i for i in kite.emulator.listing.listings if i.row.segment == "NFO-FUT")
    assert first.exit_code == 0, first.output
    assert f"kite: {count} added, 0 changed, 0 unchanged, 0 removed, 0 collisions" in first.output
    assert again.exit_code == 0, again.output
    assert f"kite: 0 added, 0 changed, {count} unchanged, 0 removed" in again.output
    tracked = await resolve_instruments(pool, "kite", [*want, future.spec.symbol])
    assert {t.symbol: int(t.token) for t in tracked} == {**want, future.spec.symbol: future.token}
    assert {t.symbol: t.exchange for t in tracked}["SENSEX.BSE_INDEX"] == "BSE_INDEX"
    row = await pool.fetchrow(
        "SELECT i.instrument_type, i.lot_size, i.expiry, p.broker_symbol FROM instruments i "
        "JOIN instrument_providers p ON p.instrument_id = i.id WHERE i.symbol = $1",
        future.spec.symbol,
    )
    assert row is not None
    assert (row["instrument_type"], row["lot_size"], row["expiry"], row["broker_symbol"]) == (
        "FUT", future.row.lot_size, future.row.expiry, future.row.tradingsymbol
    )  # fmt: skip


async def test_recorded_raw_frames_replay_to_the_same_ticks(tmp_path: Path) -> None:
    save_session(tmp_path)
    out, raw, replayed = tmp_path / "ticks.jsonl", tmp_path / "frames.raw", tmp_path / "again.jsonl"
    async with kite_emulator(rate=600) as kite:
        tokens = f"{kite.token('NSE:INFY')},{kite.token('NSE:NIFTY 50')}"
        env: dict[str, str | None] = {"MARKETPULSE_HOME": str(tmp_path),
                                      "KITE_WS_URL": kite.ws_url, "KITE_API_KEY": None,
                                      "KITE_ACCESS_TOKEN": None}  # fmt: skip
        recorded = await cli("record", "--feed", "kite", "--tokens", tokens, "--mode", "full",
                             "--duration", "1.5", "--out", str(out), "--raw", str(raw),
                             env=env)  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    replay = await cli("replay", str(raw), "--feed", "kite", "--out", str(replayed), env=env)
    assert replay.exit_code == 0, replay.output
    first = out.read_text().splitlines()
    second = replayed.read_text().splitlines()
    assert len(first) > 10
    # Stopping may cut the last frame between the capture and the tick file, never elsewhere.
    assert second[: len(first)] == first and len(second) - len(first) <= 300
    # A new token streams in quote until the mode request lands, then in full.
    modes = [json.loads(line)["mode"] for line in first]
    assert modes[-1] == "full" and "quote" not in modes[modes.index("full") :]


def _kite_settings(settings: Settings, kite: RunningEmulator, subscribe: list[str]) -> Settings:
    return settings.model_copy(
        update={
            "feeds": ["kite"], "subscribe": subscribe, "subscribe_mode": "full",
            "kite_ws_url": kite.ws_url, "kite_api_url": kite.api_url,
        }
    )  # fmt: skip


async def test_the_service_streams_kite_ticks_to_redis_and_the_quotes_api(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    symbols = ["INFY.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX"]
    save_session(settings.marketpulse_home)
    async with kite_emulator(rate=200) as kite:
        configured = _kite_settings(settings, kite, symbols)
        assert SPEC.instruments is not None and feed_spec("kite") is SPEC
        records = await SPEC.instruments(configured, None)
        report = await sync_instruments(pool, "kite", records)
        assert report.added == len(kite.emulator.listing.listings)
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            url = f"{endpoints.http}/api/quotes?symbols={','.join(symbols)}"
            # A new token streams in quote until the mode request lands: wait for full.
            body = await _eventually(
                lambda: http.get(url),
                lambda b: not b["missing"] and b["quotes"]["INFY.NSE"]["mode"] == "full",
            )
            subscribed = kite.emulator.history[0].modes
            snapshot = await redis.get(configured.snapshot_key("SENSEX.BSE_INDEX", "full"))
    quotes = body["quotes"]
    assert {s: q["source"] for s, q in quotes.items()} == dict.fromkeys(symbols, "kite")
    assert {s: q["exchange"] for s, q in quotes.items()} == {
        "INFY.NSE": "NSE", "NIFTY50.NSE_INDEX": "NSE_INDEX", "SENSEX.BSE_INDEX": "BSE_INDEX"
    }  # fmt: skip
    assert quotes["INFY.NSE"]["mode"] == "full" and len(quotes["INFY.NSE"]["bids"]) == 5
    assert quotes["SENSEX.BSE_INDEX"]["token"] == str(kite.token("BSE:SENSEX"))
    assert snapshot is not None and json.loads(snapshot)["symbol"] == "SENSEX.BSE_INDEX"
    assert subscribed == dict.fromkeys((kite.token(k) for k in ("NSE:INFY", "NSE:NIFTY 50",
                                                                "BSE:SENSEX")), "full")  # fmt: skip


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
    with pytest.raises(KiteSetupError, match="set SUBSCRIBE to symbols such as"):
        await SPEC.startup(adapter, settings.model_copy(update={"subscribe": []}), resolver)


def test_replay_decodes_binary_frames_and_skips_text_frames() -> None:
    tick = Tick(source="kite", token="408065", exchange="NSE", mode="ltp", ltp=1525.5)
    assert SPEC.decode is not None
    assert SPEC.decode(encode_frame([tick]), 7) == [
        Tick(source="kite", token="408065", exchange="NSE", mode="ltp", ltp=1525.5, ts_recv=7)
    ]
    assert SPEC.decode('{"type": "error", "data": "x"}', 7) == []
    assert SPEC.decode(b"\x00", 7) == []
