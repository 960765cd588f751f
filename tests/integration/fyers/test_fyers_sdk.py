"""The official SDK (fyers-apiv3, test-only) against our emulator: it logs in with the token's
hsm_key, switches to full mode, subscribes and decodes our snapshots and updates to the values
the emulator holds, and acknowledges data messages as the ack count tells it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from marketpulse.emulators.fyers import TEST_APP_ID
from marketpulse.feeds.fyers import wire
from tests.integration.fyers.helpers import access_token, fyers_emulator, wait_for

data_ws = pytest.importorskip("fyers_apiv3.FyersWebsocket.data_ws")


async def test_the_official_sdk_decodes_the_emulator_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages: list[dict[str, Any]] = []
    errors: list[Any] = []
    async with fyers_emulator(ack_count=2) as fy:
        sbin = fy.emulator.listing.by_symbol["NSE:SBIN-EQ"]
        topic = sbin.scrip_topic
        monkeypatch.setattr(
            data_ws.SymbolConversion, "symbol_to_hsmtoken",
            lambda self, symbols: ({topic: "NSE:SBIN-EQ"}, [], False, ""),
        )  # fmt: skip
        data_ws.FyersDataSocket._instance = None
        sock = data_ws.FyersDataSocket(
            access_token=f"{TEST_APP_ID}:{access_token()}", log_path=str(tmp_path),
            litemode=False, reconnect=False, on_message=messages.append, on_error=errors.append,
            on_connect=lambda: sock.subscribe(symbols=["NSE:SBIN-EQ"]),
        )  # fmt: skip
        sock._FyersDataSocket__url = fy.ws_url
        threading.Thread(target=sock.connect, daemon=True).start()
        await wait_for(lambda: any("ltp" in m for m in messages), timeout=20)  # the snapshot
        base = fy.emulator.last["NSE:SBIN-EQ"]
        for step in range(1, 5):
            fy.emulator.push([msgspec.structs.replace(
                base, ltp=round(base.ltp + step * 0.05, 2), volume=(base.volume or 0) + step,
                ts_exchange=1_765_000_000_000 + step * 1000)])  # fmt: skip
        await wait_for(lambda: len([m for m in messages if "ltp" in m]) >= 5, timeout=10)
        await wait_for(lambda: len(fy.emulator.history[0].acks) >= 2, timeout=10)
        log = fy.emulator.history[0]
        threading.Thread(target=sock.close_connection, daemon=True).start()
        await asyncio.sleep(0.1)
    assert [r.kind for r in log.requests if r.kind != wire.PING][:3] == [
        wire.AUTH, wire.MODE, wire.SUBSCRIBE
    ]  # fmt: skip
    assert log.source == "PythonSDK-3.2.0" and log.topics == [topic]
    assert {"type": "cn", "code": 200, "message": "Authentication done", "s": "ok"} in messages
    assert {"type": "sub", "code": 200, "message": "Subscribed", "s": "ok"} in messages
    assert errors == []
    last = [m for m in messages if "ltp" in m][-1]
    assert (last["symbol"], last["type"]) == ("NSE:SBIN-EQ", "sf")
    assert last["ltp"] == round(base.ltp + 0.2, 2)
    assert last["vol_traded_today"] == (base.volume or 0) + 4
    assert last["exch_feed_time"] == 1_765_000_004
    assert last["prev_close_price"] == base.close and last["open_price"] == base.open
    assert last["avg_trade_price"] == base.atp and last["tot_buy_qty"] == base.total_buy_qty
    assert log.acks[:2] == [2, 4]
