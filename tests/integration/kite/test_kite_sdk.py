"""The official SDK (kiteconnect 5.2.2) against our emulator: the emulator speaks real Kite.

Each check runs the SDK in its own interpreter (``sdk_client.py``), because the SDK's Twisted
reactor is process-global and cannot be restarted. They skip when the SDK is not installed (it
is in the ``sdk`` dependency group) and ``KITE_SDK_PYTHON`` names no interpreter that has it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from marketpulse.feeds.kite.instruments import parse_instruments
from marketpulse.model import DepthLevel, Tick
from tests.integration.kite.helpers import kite_emulator, wait_for

SCRIPT = Path(__file__).with_name("sdk_client.py")


def _sdk_python() -> str:
    if os.environ.get("KITE_SDK_PYTHON"):
        return os.environ["KITE_SDK_PYTHON"]
    if importlib.util.find_spec("kiteconnect") is None:
        pytest.skip("kiteconnect is not installed (uv sync --group sdk, or set KITE_SDK_PYTHON)")
    return sys.executable


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        _sdk_python(), str(SCRIPT), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_official_kiteticker_receives_the_ticks_we_push_in_its_mode() -> None:
    async with kite_emulator(snapshots=False) as kite:
        infy, nifty = kite.token("NSE:INFY"), kite.token("NSE:NIFTY 50")
        process = await _start("ticker", str(kite.port), "full", f"{infy},{nifty}", "2")
        try:
            await wait_for(
                lambda: (
                    kite.emulator.history
                    and kite.emulator.history[-1].modes == {infy: "full", nifty: "full"}
                ),
                timeout=60,
            )
            kite.emulator.push(
                [
                    Tick(
                        source="kite", token=str(infy), exchange="NSE", mode="full", ltp=1525.5,
                        ltq=10, atp=1523.25, volume=1_234_567, total_buy_qty=50_000,
                        total_sell_qty=60_000, open=1510.0, high=1530.0, low=1505.5,
                        close=1512.35, oi=0, ts_exchange=1_705_293_930_000,
                        ts_last_trade=1_705_293_925_000,
                        bids=[DepthLevel(1525.45, 75, 3)], asks=[DepthLevel(1525.55, 50, 2)],
                    ),
                    Tick(
                        source="kite", token=str(nifty), exchange="NSE_INDEX", mode="full",
                        ltp=21500.55, open=21450.0, high=21600.0, low=21400.1, close=21550.0,
                        ts_exchange=1_705_293_930_000,
                    ),
                ]
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines[0] == {"event": "connected"}
    stock, index = lines[1:]
    assert stock["instrument_token"] == infy and stock["mode"] == "full" and stock["tradable"]
    assert (stock["last_price"], stock["average_traded_price"]) == (1525.5, 1523.25)
    assert (stock["volume_traded"], stock["last_traded_quantity"]) == (1_234_567, 10)
    assert stock["ohlc"] == {"open": 1510.0, "high": 1530.0, "low": 1505.5, "close": 1512.35}
    assert (stock["exchange_timestamp"], stock["last_trade_time"]) == (1705293930, 1705293925)
    assert stock["depth"]["buy"][0] == {"quantity": 75, "price": 1525.45, "orders": 3}
    assert stock["depth"]["sell"][:2] == [
        {"quantity": 50, "price": 1525.55, "orders": 2}, {"quantity": 0, "price": 0.0, "orders": 0}
    ]  # fmt: skip
    assert index["instrument_token"] == nifty and not index["tradable"]
    assert (index["mode"], index["last_price"], index["exchange_timestamp"]) == (
        "full", 21500.55, 1705293930
    )  # fmt: skip
    assert index["ohlc"] == {"high": 21600.0, "low": 21400.1, "open": 21450.0, "close": 21550.0}


async def test_official_kiteconnect_rest_client_logs_in_and_reads_market_data() -> None:
    async with kite_emulator() as kite:
        infy = kite.token("NSE:INFY")
        process = await _start("rest", str(kite.port), "sdk-request-1", str(infy), "NSE:INFY")
        out, err = await asyncio.wait_for(process.communicate(), 60)
        last = kite.emulator.last[infy]
        dump = kite.emulator.listing.csv()
    assert process.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out)
    assert result["session"] == {"user_id": "MP0001", "access_token": "test_access_token",
                                 "public_token": "test_public_token"}  # fmt: skip
    quote = result["quote"]["NSE:INFY"]
    assert (quote["instrument_token"], quote["last_price"], quote["volume"]) == (
        infy, last.ltp, last.volume
    )  # fmt: skip
    assert len(quote["depth"]["buy"]) == len(quote["depth"]["sell"]) == 5
    assert result["ltp"] == {"NSE:INFY": {"instrument_token": infy, "last_price": last.ltp}}
    assert result["ohlc"]["NSE:INFY"]["ohlc"]["close"] == last.close
    candles = result["candles"]
    assert candles and all(c["low"] <= min(c["open"], c["close"]) for c in candles)
    assert all(max(c["open"], c["close"]) <= c["high"] for c in candles)
    instruments = result["instruments"]
    assert len(instruments) == len(parse_instruments(dump).records)
    infy_row = next(i for i in instruments if i["tradingsymbol"] == "INFY")
    assert (infy_row["instrument_token"], infy_row["exchange"]) == (infy, "NSE")
