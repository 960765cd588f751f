"""Runs the official kiteconnect SDK against an emulator; prints JSON on standard output.

Executed in a subprocess by the tests (the SDK's Twisted reactor is process-global and cannot
be restarted). Imports nothing from marketpulse. Usage:

    sdk_client.py ticker PORT MODE TOKEN[,TOKEN...] COUNT   first COUNT ticks as JSON lines
    sdk_client.py rest PORT REQUEST_TOKEN TOKEN KEY         session, quote, ltp, ohlc, candles,
                                                            instruments as one JSON document
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
from typing import Any

API_KEY = "test_api_key"
API_SECRET = "test_api_secret"
ACCESS_TOKEN = "test_access_token"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def ticker(port: str, mode: str, tokens: str, count: str) -> None:
    from kiteconnect import KiteTicker

    wanted = [int(t) for t in tokens.split(",")]
    needed = int(count)
    ticks: list[dict[str, Any]] = []
    done = threading.Event()
    kws = KiteTicker(API_KEY, ACCESS_TOKEN, root=f"ws://127.0.0.1:{port}")

    def on_connect(ws: Any, response: Any) -> None:
        ws.subscribe(wanted)
        ws.set_mode(mode, wanted)
        print(json.dumps({"event": "connected"}), flush=True)

    def on_ticks(ws: Any, batch: list[dict[str, Any]]) -> None:
        for tick in batch:
            if len(ticks) < needed:
                ticks.append(tick)
                print(json.dumps(_plain(tick)), flush=True)
        if len(ticks) >= needed:
            done.set()

    kws.on_connect = on_connect
    kws.on_ticks = on_ticks
    kws.connect(threaded=True)
    finished = done.wait(60)
    os._exit(0 if finished else 3)  # the reactor thread cannot be stopped and restarted


def rest(port: str, request_token: str, token: str, key: str) -> None:
    from kiteconnect import KiteConnect

    kite = KiteConnect(API_KEY, root=f"http://127.0.0.1:{port}")
    session = kite.generate_session(request_token, api_secret=API_SECRET)
    end = datetime.datetime.now().replace(microsecond=0)
    out = {
        "session": {k: session[k] for k in ("user_id", "access_token", "public_token")},
        "quote": kite.quote([key]),
        "ltp": kite.ltp([key]),
        "ohlc": kite.ohlc([key]),
        "candles": kite.historical_data(
            int(token), end - datetime.timedelta(days=5), end, "15minute"
        ),
        "instruments": kite.instruments(),
    }
    print(json.dumps(_plain(out)))


if __name__ == "__main__":
    {"ticker": ticker, "rest": rest}[sys.argv[1]](*sys.argv[2:])
