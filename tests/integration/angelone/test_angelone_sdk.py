"""The official Python SDK's ``SmartWebSocketV2`` client against our emulator (spec §7).

An independent reading of our wire: the SDK connects with its own headers (raw JWT), sends its
own subscribe JSON, keeps the socket alive with control pings only, and parses our packets with
its own parser, which returns raw integers (paise, epoch ms / s).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from marketpulse.emulators.angelone import (
    TEST_API_KEY,
    TEST_CLIENT_CODE,
    TEST_FEED_TOKEN,
    TEST_JWT,
)
from marketpulse.model import DepthLevel, Tick
from tests.integration.angelone.support import emulator, wait_for

SCRIPT = Path(__file__).with_name("sdk_client.py")
TS = 1_705_293_930_123

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("SmartApi") is None or importlib.util.find_spec("websocket") is None,
    reason="smartapi-python and websocket-client (dev group `sdk`) are not installed",
)


async def read_events(stream: asyncio.StreamReader, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while sum(1 for e in events if e["event"] == "data") < count:
        line = await stream.readline()
        if not line:
            break
        events.append(json.loads(line))
    return events


async def test_the_official_sdk_client_receives_exactly_what_we_sent(tmp_path: Path) -> None:
    async with emulator() as running:
        reliance, nifty = running.token("RELIANCE.NSE"), running.token("NIFTY50.NSE_INDEX")
        token_list = json.dumps([{"exchangeType": 1, "tokens": [reliance, nifty]}])
        with (tmp_path / "sdk.stderr").open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(SCRIPT), running.ws_url, TEST_JWT, TEST_API_KEY,
                TEST_CLIENT_CODE, TEST_FEED_TOKEN, "3", token_list, "2",
                cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        try:
            hub = running.emulator.hub
            await wait_for(lambda: len(hub.subscribed_tokens()) == 2, timeout=60)
            running.emulator.push([
                Tick("script", reliance, "NSE", "full", 2500.75, ltq=15, atp=2498.1,
                     volume=3_456_789, total_buy_qty=125_000, total_sell_qty=98_000,
                     open=2480.0, high=2515.0, low=2475.5, close=2470.0, oi=0,
                     upper_circuit=2717.0, lower_circuit=2223.0, high_52w=2600.0,
                     low_52w=1900.0, ts_exchange=TS, ts_last_trade=1_705_293_925_000,
                     bids=[DepthLevel(2500.7, 75, 3)], asks=[DepthLevel(2500.8, 50, 2)]),
                Tick("script", nifty, "NSE_INDEX", "full", 21500.55, open=21400.0,
                     high=21550.0, low=21390.0, close=21450.0, ts_exchange=TS),
            ])  # fmt: skip
            assert process.stdout is not None
            events = await asyncio.wait_for(read_events(process.stdout, 2), 60)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()

    assert [e["event"] for e in events] == ["open", "data", "data"], tmp_path / "sdk.stderr"
    equity, index = (e["data"] for e in events[1:])
    assert {k: equity[k] for k in (
        "subscription_mode", "exchange_type", "token", "sequence_number", "exchange_timestamp",
        "last_traded_price", "last_traded_quantity", "average_traded_price",
        "volume_trade_for_the_day", "total_buy_quantity", "total_sell_quantity",
        "open_price_of_the_day", "high_price_of_the_day", "low_price_of_the_day", "closed_price",
        "last_traded_timestamp", "open_interest", "upper_circuit_limit", "lower_circuit_limit",
        "52_week_high_price", "52_week_low_price",
    )} == {
        "subscription_mode": 3, "exchange_type": 1, "token": reliance, "sequence_number": 1,
        "exchange_timestamp": TS, "last_traded_price": 250075, "last_traded_quantity": 15,
        "average_traded_price": 249810, "volume_trade_for_the_day": 3_456_789,
        "total_buy_quantity": 125000.0, "total_sell_quantity": 98000.0,
        "open_price_of_the_day": 248000, "high_price_of_the_day": 251500,
        "low_price_of_the_day": 247550, "closed_price": 247000,
        "last_traded_timestamp": 1_705_293_925, "open_interest": 0,
        "upper_circuit_limit": 271700, "lower_circuit_limit": 222300,
        "52_week_high_price": 260000, "52_week_low_price": 190000,
    }  # fmt: skip
    assert equity["best_5_buy_data"][0] == {"flag": 1, "quantity": 75, "price": 250070,
                                            "no of orders": 3}  # fmt: skip
    assert equity["best_5_sell_data"][0] == {"flag": 0, "quantity": 50, "price": 250080,
                                             "no of orders": 2}  # fmt: skip
    assert (index["token"], index["last_traded_price"], index["closed_price"]) == (
        nifty, 2150055, 2145000)  # fmt: skip

    (client,) = running.emulator.hub.history
    assert client.requests[0].correlation_id == "mp1"
    assert client.pings == 0  # the SDK relies on control pings; the socket stayed up anyway
